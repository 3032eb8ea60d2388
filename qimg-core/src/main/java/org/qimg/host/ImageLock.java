package org.qimg.host;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.qimg.ImageException;

/**
 * QEMU-compatible image locking: open-file-description byte locks at the offsets QEMU's file driver
 * uses, so qimg and QEMU see each other. Byte {@code 100 + p} held (shared) means "someone uses
 * permission p"; byte {@code 200 + p} held means "someone does not let others have p". Permission 0
 * is consistent read, 1 is write, 3 is resize. The sets are QEMU 7.2's, as qemu-io holds them (read
 * back with F_OFD_GETLK), by what the file is to the image:
 * <ul>
 * <li>a qcow2 image, top or backing: its reader uses 0, its writer 0, 1 and 3; both forbid 1 and 3
 * (the metadata must not change under them);</li>
 * <li>a raw image, top or backing: its reader uses 0, its writer 0 and 1, and 3 when it resizes;
 * neither forbids anything;</li>
 * <li>the external data file of a qcow2 image: used as by a qcow2 image, only 3 forbidden;</li>
 * <li>a file about to be made into an image (create): uses 1 and 3 and forbids 3.</li>
 * </ul>
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

    /** Takes the locks of a reader or a writer of a file used as {@code use}, or fails naming the conflict. */
    static void acquire(int fd, String name, HostFile.Use use, boolean writer) throws IOException {
        int[] uses = !writer ? new int[] {READ}
                : use == HostFile.Use.RAW ? new int[] {READ, WRITE} : new int[] {READ, WRITE, RESIZE};
        int[] denies = switch (use) {
            case QCOW2 -> new int[] {WRITE, RESIZE};
            case RAW -> new int[0];
            case DATA_FILE -> new int[] {RESIZE};
        };
        acquire(fd, name, uses, denies);
    }

    /** Releases every lock byte {@code fd} holds. */
    static void release(int fd) {
        for (long base : new long[] {USE_BASE, DENY_BASE}) {
            for (long p = 0; p <= RESIZE + 1; p++) {
                set(fd, base + p, F_UNLCK);
            }
        }
    }

    /** Adds the use of resizing (a raw writer takes it only to resize), or fails naming the conflict. */
    static void acquireResize(int fd, String name) throws IOException {
        acquire(fd, name, new int[] {RESIZE}, new int[0]);
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

    /** The lock bytes (100-104, 200-204) that other open files hold on {@code path}: what QEMU would see. */
    static List<Integer> heldBytes(Path path) throws IOException {
        List<Integer> held = new ArrayList<>();
        int fd = Native.open(path.toString(), false);
        try {
            for (long base : new long[] {USE_BASE, DENY_BASE}) {
                for (long p = 0; p <= RESIZE + 1; p++) {
                    if (heldByOthers(fd, base + p)) {
                        held.add((int) (base + p));
                    }
                }
            }
        } finally {
            Native.close(fd);
        }
        return held;
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
