package org.qimg.cli;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * qemu-img convert's sparse detection (its {@code -S}): a buffer of guest bytes cut at blocks aligned
 * to guest offsets into maximal runs of data and runs of all-zero blocks, so that the copies write the
 * data and leave (or zero) the rest.
 */
final class ZeroRuns {
    /** What to do with each run, in order. */
    interface Sink {
        void data(long guestOffset, ByteBuffer bytes) throws IOException;

        void zeroes(long guestOffset, int length) throws IOException;
    }

    private static final int PIECE = 4096;
    private static final MemorySegment ZEROES = Arena.global().allocate(PIECE);

    private ZeroRuns() {
    }

    /**
     * Cuts {@code data} (its bytes from position 0, read at {@code guestOffset}) into runs of blocks of
     * {@code block} bytes, aligned to guest offsets, and hands them to {@code sink}.
     */
    static void split(long guestOffset, ByteBuffer data, int block, Sink sink) throws IOException {
        MemorySegment bytes = MemorySegment.ofBuffer(data);
        int length = data.remaining();
        int runStart = 0;
        boolean runIsZero = false;
        int at = 0;
        while (at < length) {
            int blockEnd = (int) Math.min(length, at + block - Math.floorMod(guestOffset + at, (long) block));
            boolean zero = isZero(bytes, at, blockEnd);
            if (at > runStart && zero != runIsZero) {
                emit(sink, guestOffset, data, runStart, at, runIsZero);
                runStart = at;
            }
            runIsZero = zero;
            at = blockEnd;
        }
        if (length > runStart) {
            emit(sink, guestOffset, data, runStart, length, runIsZero);
        }
    }

    private static void emit(Sink sink, long guestOffset, ByteBuffer data, int from, int to, boolean zero)
            throws IOException {
        if (zero) {
            sink.zeroes(guestOffset + from, to - from);
        } else {
            sink.data(guestOffset + from, data.slice(from, to - from));
        }
    }

    /** Whether all the buffer's remaining bytes are zero. */
    static boolean isZero(ByteBuffer b) {
        return isZero(MemorySegment.ofBuffer(b), 0, b.remaining());
    }

    /**
     * Whether {@code [from, to)} of {@code bytes} is all zero, by {@code MemorySegment.mismatch} against
     * zeroes (a getLong loop under C1 took ~0.7 s a GiB). Compared 4 KiB at a time: the JDK method that
     * calls the vectorised comparison is compiled, and starts using the CPU's wide compares, only after
     * a few hundred calls; with 2 MiB at a time half of a 1 GiB copy ran before that, ~3x slower.
     */
    private static boolean isZero(MemorySegment bytes, long from, long to) {
        for (long at = from; at < to; at += PIECE) {
            long n = Math.min(PIECE, to - at);
            if (MemorySegment.mismatch(bytes, at, at + n, ZEROES, 0, n) >= 0) {
                return false;
            }
        }
        return true;
    }
}
