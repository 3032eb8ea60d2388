package org.qimg.cli;

import java.io.IOException;
import java.nio.ByteBuffer;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.host.HostFile;

/**
 * Copies a device's content into a raw file, writing only what holds data. The device's map decides:
 * a {@code zero} extent is a hole and is not even read; data extents are read in large sequential
 * chunks by two threads, each writing what it read as soon as it has read it ({@link ParallelCopy}).
 * Inside data, aligned blocks of {@code sparseSize} bytes that are all zero are skipped as well
 * (qemu-img's {@code -S}).
 *
 * <p>With {@code zeroInitialized} (a fresh or truncated regular file whose length is already set) a
 * skipped range stays a hole, and each large run of data gets its blocks just before it is written
 * ({@link HostFile#allocate}); otherwise (a device node, or an existing output with -n) skipped
 * ranges are zeroed: a hole punched where the file or device can, else zeroes written.
 */
final class RawCopy {
    /** Bytes per read and write. */
    static final int CHUNK = 4 << 20;
    /** Threads that read and write, each a chunk at a time ({@link ParallelCopy}). */
    private static final int THREADS = 2;
    /** Large runs of data get their blocks first: on ext4 cheaper than delayed allocation. */
    private static final int ALLOCATE_FIRST = 1 << 20;

    private final BlockDevice source;
    private final HostFile target;
    private final boolean zeroInitialized;
    private final int sparseSize;
    private final Progress progress;

    RawCopy(BlockDevice source, HostFile target, boolean zeroInitialized, int sparseSize, Progress progress) {
        this.source = source;
        this.target = target;
        this.zeroInitialized = zeroInitialized;
        this.sparseSize = sparseSize;
        this.progress = progress;
    }

    void run() throws IOException {
        long size = source.size();
        progress.update(0, size);
        ByteBuffer zeroes = ByteBuffer.allocateDirect(Math.max(sparseSize, zeroInitialized ? 0 : CHUNK));
        ParallelCopy.run(source, CHUNK, THREADS, (e, r) -> {
            if (!e.zero()) {
                r.readRange(e.start(), e.end(), CHUNK);
            }
        }, new ParallelCopy.Sink() {
            @Override
            public void prepare(ParallelCopy.Piece p) throws IOException {
                // A raw file's bytes have their places whatever the order of the writes: each thread
                // writes what it read, with no wait for its turn.
                writeData(p.offset(), p.data(), zeroes);
            }

            @Override
            public void accept(ParallelCopy.Piece p) throws IOException {
                if (p.data() != null) {
                    progress.update(p.offset() + p.data().remaining(), size);
                    return;
                }
                Extent e = p.extent();
                if (e.zero() && !zeroInitialized) {
                    writeZeroes(e.start(), e.length(), zeroes);
                }
                progress.update(e.end(), size);
            }
        });
        progress.update(size, size);
    }

    private void writeData(long guestOffset, ByteBuffer data, ByteBuffer zeroes) throws IOException {
        if (sparseSize == 0) {
            write(guestOffset, data);
            return;
        }
        ZeroRuns.split(guestOffset, data, sparseSize, new ZeroRuns.Sink() {
            @Override
            public void data(long offset, ByteBuffer bytes) throws IOException {
                write(offset, bytes);
            }

            @Override
            public void zeroes(long offset, int length) throws IOException {
                if (!zeroInitialized) {
                    writeZeroes(offset, length, zeroes);
                }
            }
        });
    }

    /** Makes a range of an output that is not zero-initialized read as zeroes: a hole where it can be punched. */
    private void writeZeroes(long guestOffset, long length, ByteBuffer zeroes) throws IOException {
        if (target.punchHole(guestOffset, length)) {
            return;
        }
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeroes.capacity(), length - done);
            write(guestOffset + done, zeroes.slice(0, n));
            done += n;
        }
    }

    private void write(long position, ByteBuffer src) throws IOException {
        if (zeroInitialized && src.remaining() >= ALLOCATE_FIRST) {
            target.allocate(position, src.remaining());
        }
        target.write(position, src);
    }
}
