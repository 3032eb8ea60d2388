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
import java.nio.file.Path;

/**
 * posix_fallocate(3) and fallocate(2) through the FFM API: gives a range of a file disk space without
 * writing it, as qemu-img's {@code preallocation=falloc} does, or punches a hole in it, as QEMU does
 * for a cluster it frees. The JDK has no call for either.
 */
public final class Fallocate {
    private static final int O_WRONLY = 1;
    private static final int O_CLOEXEC = 0x80000;
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(
            java.lang.foreign.MemoryLayout.PathElement.groupElement("errno"));
    private static final MethodHandle OPEN;
    private static final MethodHandle CLOSE;
    private static final MethodHandle POSIX_FALLOCATE;
    private static final MethodHandle FALLOCATE;
    private static final int FALLOC_FL_KEEP_SIZE = 0x01;
    private static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    private static final int EOPNOTSUPP = 95;

    static {
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        OPEN = linker.downcallHandle(libc.find("open").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                Linker.Option.captureCallState("errno"), Linker.Option.firstVariadicArg(2));
        CLOSE = linker.downcallHandle(libc.find("close").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        // posix_fallocate returns the error number itself instead of setting errno.
        POSIX_FALLOCATE = linker.downcallHandle(libc.find("posix_fallocate").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG));
        FALLOCATE = linker.downcallHandle(libc.find("fallocate").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

    private Fallocate() {
    }

    /** Allocates {@code [hostOffset, hostOffset + length)} of {@code path}, growing the file if needed. */
    public static void allocate(Path path, long hostOffset, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        withFile(path, (fd, state) -> {
            int err = (int) POSIX_FALLOCATE.invokeExact(fd, hostOffset, length);
            if (err != 0) {
                throw new IOException(path + ": could not preallocate 0x" + Long.toHexString(length)
                        + " bytes at 0x" + Long.toHexString(hostOffset) + " (posix_fallocate: errno " + err + ")");
            }
        });
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
        withFile(path, (fd, state) -> {
            int rc = (int) FALLOCATE.invokeExact(state, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, hostOffset,
                    length);
            int err = rc == 0 ? 0 : (int) ERRNO.get(state, 0L);
            if (rc != 0 && err != EOPNOTSUPP) {
                throw new IOException(path + ": could not discard 0x" + Long.toHexString(length) + " bytes at 0x"
                        + Long.toHexString(hostOffset) + " (fallocate: errno " + err + ")");
            }
        });
    }

    private interface FdAction {
        void run(int fd, MemorySegment state) throws Throwable;
    }

    private static void withFile(Path path, FdAction action) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CALL_STATE);
            int fd = (int) OPEN.invokeExact(state, arena.allocateFrom(path.toString()), O_WRONLY | O_CLOEXEC);
            if (fd < 0) {
                throw new IOException(path + ": open failed, errno " + (int) ERRNO.get(state, 0L));
            }
            try {
                action.run(fd, state);
            } finally {
                int ignored = (int) CLOSE.invokeExact(fd);
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
