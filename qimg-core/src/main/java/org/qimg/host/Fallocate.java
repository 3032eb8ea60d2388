package org.qimg.host;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * fallocate(2) on a file by its path ({@link Native}'s one system-call handle): gives a range of a
 * file disk space without writing it, as qemu-img's {@code preallocation=falloc} does, or punches a
 * hole in it, as QEMU does for a cluster it frees. The JDK has no call for either.
 */
public final class Fallocate {
    private static final int FALLOC_FL_KEEP_SIZE = 0x01;
    private static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    private static final int EOPNOTSUPP = 95;
    private static final int ZERO_CHUNK = 1 << 20;

    private Fallocate() {
    }

    /**
     * Allocates {@code [hostOffset, hostOffset + length)} of {@code path}, growing the file if needed.
     * The range must read as zeroes already (a fresh part of the file): where the file system has no
     * fallocate, zeroes are written instead, as posix_fallocate(3), which QEMU calls, does then.
     */
    public static void allocate(Path path, long hostOffset, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        int err;
        int fd = Native.open(path.toString(), true);
        try {
            err = Native.fallocate(fd, 0, hostOffset, length);
        } finally {
            Native.close(fd);
        }
        if (err == EOPNOTSUPP) {
            writeZeroes(path, hostOffset, length);
        } else if (err != 0) {
            throw new IOException(path + ": could not preallocate 0x" + Long.toHexString(length) + " bytes at 0x"
                    + Long.toHexString(hostOffset) + " (fallocate: errno " + err + ")");
        }
    }

    /**
     * Deallocates {@code [hostOffset, hostOffset + length)} of {@code path}, keeping its size: the range
     * reads as zeroes. A file system that cannot punch holes leaves the bytes as they are, as QEMU's
     * discard does.
     */
    public static void punchHole(Path path, long hostOffset, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        int err;
        int fd = Native.open(path.toString(), true);
        try {
            err = Native.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, hostOffset, length);
        } finally {
            Native.close(fd);
        }
        if (err != 0 && err != EOPNOTSUPP) {
            throw new IOException(path + ": could not discard 0x" + Long.toHexString(length) + " bytes at 0x"
                    + Long.toHexString(hostOffset) + " (fallocate: errno " + err + ")");
        }
    }

    private static void writeZeroes(Path path, long hostOffset, long length) throws IOException {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.WRITE)) {
            ByteBuffer zeroes = ByteBuffer.allocateDirect((int) Math.min(ZERO_CHUNK, length));
            for (long at = hostOffset, end = hostOffset + length; at < end; ) {
                zeroes.clear().limit((int) Math.min(zeroes.capacity(), end - at));
                while (zeroes.hasRemaining()) {
                    at += channel.write(zeroes, at);
                }
            }
        }
    }
}
