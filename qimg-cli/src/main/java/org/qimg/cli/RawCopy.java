package org.qimg.cli;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.qimg.BlockDevice;
import org.qimg.Extent;

/**
 * Copies a device's content into a raw file, writing only what holds data. The device's map decides:
 * a {@code zero} extent is a hole and is not even read; data extents are read in large sequential
 * chunks by a reader thread while the calling thread writes the previous chunk. Inside data, aligned
 * blocks of {@code sparseSize} bytes that are all zero are skipped as well (qemu-img's {@code -S}).
 *
 * <p>With {@code zeroInitialized} (a fresh or truncated regular file whose length is already set) a
 * skipped range stays a hole; otherwise (a device node) skipped ranges are written as zeroes.
 */
final class RawCopy {
    /** Bytes per read and write; three buffers circulate between the two threads. */
    static final int CHUNK = 4 << 20;
    private static final int BUFFERS = 3;

    private final BlockDevice source;
    private final FileChannel target;
    private final boolean zeroInitialized;
    private final int sparseSize;
    private final Progress progress;
    /**
     * Tells the reader to stop when the writer gives up. Not an interrupt: interrupting a thread in
     * FileChannel I/O closes the channel, and the source's channels belong to the device.
     */
    private final AtomicBoolean cancelled = new AtomicBoolean();

    /** A filled buffer (data), a range to leave as zeroes ({@code buffer == null}), the end, or a failure. */
    private record Chunk(long guestOffset, long length, ByteBuffer buffer, Throwable failure, boolean end) {
    }

    RawCopy(BlockDevice source, FileChannel target, boolean zeroInitialized, int sparseSize, Progress progress) {
        this.source = source;
        this.target = target;
        this.zeroInitialized = zeroInitialized;
        this.sparseSize = sparseSize;
        this.progress = progress;
    }

    void run() throws IOException {
        long size = source.size();
        progress.update(0, size);
        BlockingQueue<ByteBuffer> free = new ArrayBlockingQueue<>(BUFFERS);
        BlockingQueue<Chunk> filled = new ArrayBlockingQueue<>(BUFFERS + 1);
        for (int i = 0; i < BUFFERS; i++) {
            free.add(ByteBuffer.allocateDirect(CHUNK));
        }
        Thread reader = Thread.ofPlatform().name("qimg-convert-read").daemon().start(() -> read(free, filled));
        ByteBuffer zeroes = ByteBuffer.allocateDirect(Math.max(sparseSize, zeroInitialized ? 0 : CHUNK));
        try {
            while (true) {
                Chunk chunk = filled.take();
                if (chunk.failure() != null) {
                    throw rethrow(chunk.failure());
                }
                if (chunk.end()) {
                    break;
                }
                if (chunk.buffer() == null) {
                    if (!zeroInitialized) {
                        writeZeroes(chunk.guestOffset(), chunk.length(), zeroes);
                    }
                } else {
                    writeData(chunk.guestOffset(), chunk.buffer(), zeroes);
                    free.add(chunk.buffer());
                }
                progress.update(chunk.guestOffset() + chunk.length(), size);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("convert interrupted");
        } finally {
            cancelled.set(true);
            try {
                reader.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        progress.update(size, size);
    }

    /** The reader thread: walks the map, reads data extents chunk by chunk, hands them over in order. */
    private void read(BlockingQueue<ByteBuffer> free, BlockingQueue<Chunk> filled) {
        try {
            BlockDevice.ExtentStream extents = source.map(0, source.size());
            for (Extent e = extents.next(); e != null; e = extents.next()) {
                if (e.zero()) {
                    if (!hand(filled, new Chunk(e.start(), e.length(), null, null, false))) {
                        return;
                    }
                    continue;
                }
                for (long at = e.start(); at < e.end(); ) {
                    int n = (int) Math.min(CHUNK, e.end() - at);
                    ByteBuffer buffer = take(free);
                    if (buffer == null) {
                        return;
                    }
                    buffer.clear().limit(n);
                    source.read(at, buffer);
                    if (!hand(filled, new Chunk(at, n, buffer.flip(), null, false))) {
                        return;
                    }
                    at += n;
                }
            }
            hand(filled, new Chunk(source.size(), 0, null, null, true));
        } catch (IOException | RuntimeException | Error e) {
            hand(filled, new Chunk(0, 0, null, e, false));
        }
    }

    /** Waits for a free buffer; null once the writer gave up. */
    private ByteBuffer take(BlockingQueue<ByteBuffer> free) {
        try {
            ByteBuffer buffer = null;
            while (buffer == null && !cancelled.get()) {
                buffer = free.poll(50, TimeUnit.MILLISECONDS);
            }
            return buffer;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    /** Hands a chunk to the writer; false once the writer gave up. */
    private boolean hand(BlockingQueue<Chunk> filled, Chunk chunk) {
        try {
            while (!cancelled.get()) {
                if (filled.offer(chunk, 50, TimeUnit.MILLISECONDS)) {
                    return true;
                }
            }
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private void writeData(long guestOffset, ByteBuffer data, ByteBuffer zeroes) throws IOException {
        if (sparseSize == 0) {
            write(guestOffset, data);
            return;
        }
        int length = data.remaining();
        int runStart = -1;
        int at = 0;
        while (at < length) {
            // Blocks are aligned to guest offsets, so the holes line up with the file's blocks.
            int blockEnd = (int) Math.min(length, at + sparseSize - Math.floorMod(guestOffset + at, (long) sparseSize));
            boolean zero = data.slice(at, blockEnd - at).mismatch(zeroes.slice(0, blockEnd - at)) < 0;
            if (zero && runStart >= 0) {
                write(guestOffset + runStart, data.slice(runStart, at - runStart));
                runStart = -1;
            } else if (!zero && runStart < 0) {
                runStart = at;
            }
            if (zero && !zeroInitialized) {
                write(guestOffset + at, zeroes.slice(0, blockEnd - at));
            }
            at = blockEnd;
        }
        if (runStart >= 0) {
            write(guestOffset + runStart, data.slice(runStart, length - runStart));
        }
    }

    private void writeZeroes(long guestOffset, long length, ByteBuffer zeroes) throws IOException {
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeroes.capacity(), length - done);
            write(guestOffset + done, zeroes.slice(0, n));
            done += n;
        }
    }

    private void write(long position, ByteBuffer src) throws IOException {
        long at = position;
        while (src.hasRemaining()) {
            at += target.write(src, at);
        }
    }

    private static IOException rethrow(Throwable failure) {
        if (failure instanceof IOException io) {
            return io;
        }
        if (failure instanceof RuntimeException re) {
            throw re;
        }
        throw (Error) failure;
    }
}
