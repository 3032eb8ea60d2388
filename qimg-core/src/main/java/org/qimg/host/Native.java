package org.qimg.host;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few Linux system calls the JDK lacks, through the FFM API: open, close, lseek, fstat, ftruncate,
 * fcntl, sync_file_range, fallocate.
 */
final class Native {
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    static final int ENXIO = 6;
    private static final int SYNC_FILE_RANGE_WRITE = 2;
    private static final long AT_FDCWD = -100;
    private static final int O_RDONLY = 0;
    private static final int O_RDWR = 2;
    private static final int O_CLOEXEC = 0x80000;
    /** struct stat on x86-64 and aarch64 Linux is 144 / 128 bytes; st_blocks sits at byte 64. */
    private static final long STAT_SIZE = 256;
    private static final long ST_BLOCKS_OFFSET = 64;

    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(
            java.lang.foreign.MemoryLayout.PathElement.groupElement("errno"));

    /** System call numbers of the two architectures qimg runs on. */
    private record Numbers(long openat, long close, long lseek, long fstat, long ftruncate, long fcntl,
                           long syncFileRange, long fallocate) {
        static Numbers of(String arch) {
            return switch (arch) {
                case "amd64", "x86_64" -> new Numbers(257, 3, 8, 5, 77, 72, 277, 285);
                case "aarch64" -> new Numbers(56, 57, 62, 80, 46, 25, 84, 47);
                default -> throw new UnsupportedOperationException(
                        "qimg's native calls support Linux on x86-64 and aarch64, not " + arch);
            };
        }
    }

    // Every call goes through libc's syscall(2), so the JVM builds one downcall handle instead of one
    // per function: building one spins method handles for several milliseconds (the first about
    // 12 ms), a noticeable part of a short qimg run. Made on first use: a read-only map of a qcow2
    // image needs none.
    //
    // syscall is variadic, but the handle is built as for a function of six longs: on the two
    // architectures above (Numbers.of refuses others) integer arguments travel in the same registers
    // either way, and glibc's syscall, a few instructions that move them into place, reads no
    // variadic state (on x86-64, %al is only an upper bound for saving vector registers). Declaring
    // it variadic made the handle's build ~6 ms slower, on the path to the first open (a tiny
    // convert: 92.5 -> 86.8 ms, 50 runs each).
    private static final class Syscall {
        static final Numbers NR = Numbers.of(System.getProperty("os.arch"));
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(
                Linker.nativeLinker().defaultLookup().find("syscall").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

    /**
     * Builds the downcall handle now (its class initialiser) and makes one harmless call through it
     * (close(-1), which fails with EBADF): the first call links more (1-2 ms), and it is not the
     * first open that should pay for it.
     */
    static void prepare() {
        close(-1);
    }

    /** syscall(nr, a, b, c, d): the result, or -1 with the error number in {@code state}. */
    private static long syscall(MemorySegment state, long nr, long a, long b, long c, long d) {
        try {
            return (long) Syscall.HANDLE.invokeExact(state, nr, a, b, c, d);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    private Native() {
    }

    static int open(String path, boolean writable) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            long fd = syscall(state, Syscall.NR.openat(), AT_FDCWD, arena.allocateFrom(path).address(),
                    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
            if (fd < 0) {
                throw new IOException(path + ": open failed, errno " + errno(state));
            }
            return (int) fd;
        }
    }

    static void close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            syscall(arena.allocate(CALL_STATE), Syscall.NR.close(), fd, 0, 0, 0);
        }
    }

    /** lseek(fd, offset, whence); returns -1 for ENXIO and throws for any other failure. */
    static long lseek(int fd, long offset, int whence) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            long result = syscall(state, Syscall.NR.lseek(), fd, offset, whence, 0);
            if (result >= 0) {
                return result;
            }
            int err = errno(state);
            if (err == ENXIO) {
                return -1;
            }
            throw new IOException("lseek(" + offset + ", " + (whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE")
                    + ") failed, errno " + err);
        }
    }

    /** ftruncate(fd, length): sets the length, leaving a hole when it grows. */
    static void ftruncate(int fd, long length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            if (syscall(state, Syscall.NR.ftruncate(), fd, length, 0, 0) != 0) {
                throw new IOException("ftruncate(" + length + ") failed, errno " + errno(state));
            }
        }
    }

    /** fcntl(fd, cmd, arg) with a pointer argument; returns its result (-1 on failure). */
    static int fcntl(int fd, int cmd, MemorySegment arg) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) syscall(arena.allocate(CALL_STATE), Syscall.NR.fcntl(), fd, cmd, arg.address(), 0);
        }
    }

    /**
     * sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE): starts writing the file's dirty pages back
     * without waiting for them. Advisory, so a failure (a file system without it) is ignored.
     */
    static void startWriteBack(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            syscall(arena.allocate(CALL_STATE), Syscall.NR.syncFileRange(), fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        }
    }

    /** fallocate(fd, mode, offset, length); returns 0 or the error number. */
    static int fallocate(int fd, int mode, long offset, long length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            return syscall(state, Syscall.NR.fallocate(), fd, mode, offset, length) == 0 ? 0 : errno(state);
        }
    }

    /** Bytes the file occupies on disk (st_blocks * 512). */
    static long allocatedBytes(int fd) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            MemorySegment stat = arena.allocate(STAT_SIZE, 8);
            if (syscall(state, Syscall.NR.fstat(), fd, stat.address(), 0, 0) != 0) {
                throw new IOException("fstat failed, errno " + errno(state));
            }
            return stat.get(ValueLayout.JAVA_LONG, ST_BLOCKS_OFFSET) * 512;
        }
    }
}
