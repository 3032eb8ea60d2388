package org.qimg.host;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few Linux system calls the JDK lacks, through the FFM API: open, close, lseek, fstat, ftruncate,
 * sync_file_range.
 */
final class Native {
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    static final int ENXIO = 6;
    private static final int SYNC_FILE_RANGE_WRITE = 2;
    private static final int O_RDONLY = 0;
    private static final int O_RDWR = 2;
    private static final int O_CLOEXEC = 0x80000;
    /** struct stat on x86-64 and aarch64 Linux is 144 / 128 bytes; st_blocks sits at byte 64. */
    private static final long STAT_SIZE = 256;
    private static final long ST_BLOCKS_OFFSET = 64;

    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(
            java.lang.foreign.MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();

    // One holder class per call, so a handle is made only when first used: making one spins method
    // handles for a few milliseconds (the first one about 20 ms), a noticeable part of a short qimg
    // run, and a read-only map never calls lseek or ftruncate.
    private static final class Open {
        static final MethodHandle HANDLE = handle("open",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                Linker.Option.captureCallState("errno"), Linker.Option.firstVariadicArg(2));
    }

    private static final class Close {
        static final MethodHandle HANDLE = handle("close",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    }

    private static final class Lseek {
        static final MethodHandle HANDLE = handle("lseek",
                FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_INT),
                Linker.Option.captureCallState("errno"));
    }

    private static final class Fstat {
        static final MethodHandle HANDLE = handle("fstat",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS),
                Linker.Option.captureCallState("errno"));
    }

    private static final class Ftruncate {
        static final MethodHandle HANDLE = handle("ftruncate",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

    private static final class SyncFileRange {
        static final MethodHandle HANDLE = handle("sync_file_range",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
    }

    private static MethodHandle handle(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        return LINKER.downcallHandle(LIBC.find(name).orElseThrow(), descriptor, options);
    }

    private Native() {
    }

    static int open(String path, boolean writable) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int fd = (int) Open.HANDLE.invokeExact(state, arena.allocateFrom(path),
                    (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
            if (fd < 0) {
                throw new IOException(path + ": open failed, errno " + (int) ERRNO.get(state, 0L));
            }
            return fd;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    static void close(int fd) {
        try {
            int ignored = (int) Close.HANDLE.invokeExact(fd);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** lseek(fd, offset, whence); returns -1 for ENXIO and throws for any other failure. */
    static long lseek(int fd, long offset, int whence) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            long result = (long) Lseek.HANDLE.invokeExact(state, fd, offset, whence);
            if (result >= 0) {
                return result;
            }
            int err = (int) ERRNO.get(state, 0L);
            if (err == ENXIO) {
                return -1;
            }
            throw new IOException("lseek(" + offset + ", " + (whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE")
                    + ") failed, errno " + err);
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** ftruncate(fd, length): sets the length, leaving a hole when it grows. */
    static void ftruncate(int fd, long length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int rc = (int) Ftruncate.HANDLE.invokeExact(state, fd, length);
            if (rc != 0) {
                throw new IOException("ftruncate(" + length + ") failed, errno " + (int) ERRNO.get(state, 0L));
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE): starts writing the file's dirty pages back
     * without waiting for them. Advisory, so a failure (a file system without it) is ignored.
     */
    static void startWriteBack(int fd) {
        try {
            int ignored = (int) SyncFileRange.HANDLE.invokeExact(fd, 0L, 0L, SYNC_FILE_RANGE_WRITE);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Bytes the file occupies on disk (st_blocks * 512). */
    static long allocatedBytes(int fd) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            MemorySegment stat = arena.allocate(STAT_SIZE, 8);
            int rc = (int) Fstat.HANDLE.invokeExact(state, fd, stat);
            if (rc != 0) {
                throw new IOException("fstat failed, errno " + (int) ERRNO.get(state, 0L));
            }
            return stat.get(ValueLayout.JAVA_LONG, ST_BLOCKS_OFFSET) * 512;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
