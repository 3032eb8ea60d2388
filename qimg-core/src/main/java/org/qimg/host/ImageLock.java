package org.qimg.host;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import org.qimg.ImageException;

/**
 * QEMU-compatible image locking: open-file-description byte locks at the offsets QEMU's file driver
 * uses, so qimg and QEMU see each other. Byte {@code 100 + p} held (shared) means "someone uses
 * permission p"; byte {@code 200 + p} held means "someone does not let others have p". Permission 0
 * is consistent read, 1 is write, 3 is resize. A reader uses 0 and forbids writes; a writer uses 0, 1
 * and 3 and forbids writes and resizes by others; a creator, about to truncate the file, uses 1 and 3
 * and forbids resizes (QEMU's file driver does so in its create). On an external data file QEMU lets
 * others write and forbids only resizes: its reader uses 0, its writer 0, 1 and 3.
 */
final class ImageLock {
    private static final int F_OFD_GETLK = 36;
    private static final int F_OFD_SETLK = 37;
    private static final short F_RDLCK = 0;
    private static final short F_WRLCK = 1;
    private static final short F_UNLCK = 2;
    private static final long USE_BASE = 100;
    private static final long DENY_BASE = 200;
    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int RESIZE = 3;
    private static final String[] NAMES = {"consistent read", "write", "write unchanged", "resize"};

    /** struct flock on Linux x86-64 and aarch64: type, whence, start, len, pid. */
    private static final MemoryLayout FLOCK = MemoryLayout.structLayout(
            ValueLayout.JAVA_SHORT.withName("type"), ValueLayout.JAVA_SHORT.withName("whence"),
            MemoryLayout.paddingLayout(4), ValueLayout.JAVA_LONG.withName("start"),
            ValueLayout.JAVA_LONG.withName("len"), ValueLayout.JAVA_INT.withName("pid"), MemoryLayout.paddingLayout(4));
    private static final VarHandle TYPE = FLOCK.varHandle(MemoryLayout.PathElement.groupElement("type"));
    private static final VarHandle START = FLOCK.varHandle(MemoryLayout.PathElement.groupElement("start"));
    private static final VarHandle LEN = FLOCK.varHandle(MemoryLayout.PathElement.groupElement("len"));

    private ImageLock() {
    }

    /** Takes the locks of a reader or a writer on {@code fd}, or fails naming the conflict. */
    static void acquire(int fd, String name, boolean writer) throws IOException {
        acquire(fd, name, writer ? new int[] {READ, WRITE, RESIZE} : new int[] {READ},
                writer ? new int[] {WRITE, RESIZE} : new int[] {WRITE});
    }

    /** Takes the locks of a reader or a writer of an image on its external data file {@code fd}. */
    static void acquireForDataFile(int fd, String name, boolean writer) throws IOException {
        acquire(fd, name, writer ? new int[] {READ, WRITE, RESIZE} : new int[] {READ}, new int[] {RESIZE});
    }

    /** Takes the locks of a creator on {@code fd}, or fails naming the conflict. */
    static void acquireForCreation(int fd, String name) throws IOException {
        acquire(fd, name, new int[] {WRITE, RESIZE}, new int[] {RESIZE});
    }

    private static void acquire(int fd, String name, int[] uses, int[] denies) throws IOException {
        for (int p : uses) {
            if (heldByOthers(fd, DENY_BASE + p)) {
                throw new ImageException(name + ": Failed to get \"" + NAMES[p] + "\" lock: is another process using "
                        + "the image?");
            }
        }
        for (int p : denies) {
            if (heldByOthers(fd, USE_BASE + p)) {
                throw new ImageException(name + ": Failed to get shared \"" + NAMES[p] + "\" lock: is another "
                        + "process using the image?");
            }
        }
        for (int p : uses) {
            set(fd, USE_BASE + p, F_RDLCK);
        }
        for (int p : denies) {
            set(fd, DENY_BASE + p, F_RDLCK);
        }
    }

    private static boolean heldByOthers(int fd, long offset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment lock = arena.allocate(FLOCK);
            TYPE.set(lock, 0L, F_WRLCK);
            START.set(lock, 0L, offset);
            LEN.set(lock, 0L, 1L);
            if (Native.fcntl(fd, F_OFD_GETLK, lock) != 0) {
                return false; // the file system has no locks: nothing to honour
            }
            return (short) TYPE.get(lock, 0L) != F_UNLCK;
        }
    }

    private static void set(int fd, long offset, short type) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment lock = arena.allocate(FLOCK);
            TYPE.set(lock, 0L, type);
            START.set(lock, 0L, offset);
            LEN.set(lock, 0L, 1L);
            Native.fcntl(fd, F_OFD_SETLK, lock);
        }
    }
}
