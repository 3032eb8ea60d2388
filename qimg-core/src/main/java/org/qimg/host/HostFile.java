package org.qimg.host;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.qimg.ImageException;

/**
 * A file on the host: positional reads, a read-only memory mapping for metadata, and the host's own
 * sparse map through lseek(SEEK_DATA / SEEK_HOLE). Thread-safe.
 */
public final class HostFile implements Closeable {
    private final Path path;
    private final String name;
    private final FileChannel channel;
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private volatile MemorySegment mapping;
    private final boolean writable;
    private volatile long size;

    private HostFile(Path path, String name, FileChannel channel, int fd, long size, boolean writable) {
        this.path = path;
        this.name = name;
        this.channel = channel;
        this.fd = fd;
        this.size = size;
        this.writable = writable;
    }

    /**
     * Prepares what the first open needs from the FFM API (some 10-30 ms of method-handle spinning).
     * A program that will open files soon can call it on a thread of its own at start, so that the
     * work overlaps its other start-up; opening files does it anyway when needed.
     */
    public static void prepareNativeCalls() {
        Native.prepare();
    }

    /** What a file is to the image that opens it: QEMU locks each kind differently ({@link ImageLock}). */
    public enum Use {
        /** A qcow2 image, top or backing. */
        QCOW2,
        /** A raw image, top or backing. */
        RAW,
        /** The external data file of a qcow2 image. */
        DATA_FILE;

        /** How an image of {@code format} ("raw", else qcow2) is locked. */
        public static Use of(String format) {
            return format.equals("raw") ? RAW : QCOW2;
        }
    }

    /** Whether {@link #lock} took locks (a force-shared open takes none). */
    private volatile boolean locked;

    /**
     * Takes the locks QEMU takes on a file used as {@code use}, for reading or (a writable file)
     * writing, so that qimg, qemu-img and qemu-nbd keep out of each other's way as QEMU's processes
     * do; fails naming the conflict. Released on close.
     */
    public void lock(Use use) throws IOException {
        ImageLock.acquire(fd, name, use, writable);
        locked = true;
    }

    /**
     * Once a file opened with {@link #openForCreation} holds its new image: trades the creator's locks
     * for those of a writer of a file used as {@code use}, as QEMU does when it opens the image it made.
     */
    public void lockCreated(Use use) throws IOException {
        ImageLock.release(fd);
        lock(use);
    }

    /** Before resizing a locked raw image: takes the use of resizing, which its writer lacks. */
    public void lockForResize() throws IOException {
        if (locked) {
            ImageLock.acquireResize(fd, name);
        }
    }

    /**
     * Opens {@code path} to make an image in it (the file is created if missing) and takes the locks
     * qemu-img create takes before it truncates a file: this writes and resizes it and lets nobody else
     * resize it. An image that another process (QEMU, qimg) uses is so refused before it is touched.
     * The locks last until the returned file is closed.
     */
    public static HostFile openForCreation(Path path, String name) throws IOException {
        HostFile file;
        try {
            file = open(path, name, true, StandardOpenOption.CREATE);
        } catch (NoSuchFileException e) {
            throw new ImageException("Could not create '" + name + "': No such file or directory");
        } catch (AccessDeniedException e) {
            throw new ImageException("Could not create '" + name + "': Permission denied");
        } catch (FileSystemException e) {
            throw new ImageException("Could not create '" + name + "': "
                    + (e.getReason() == null ? e.getMessage() : e.getReason()));
        }
        try {
            ImageLock.acquireForCreation(file.fd, name);
            return file;
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Opens {@code path} for reading; {@code name} is how messages and maps call it. */
    public static HostFile openReadOnly(Path path, String name) throws IOException {
        return open(path, name, false);
    }

    /** Opens {@code path} for reading and writing. */
    public static HostFile openReadWrite(Path path, String name) throws IOException {
        return open(path, name, true);
    }

    private static HostFile open(Path path, String name, boolean writable, StandardOpenOption... more)
            throws IOException {
        java.util.Set<StandardOpenOption> options = java.util.EnumSet.of(StandardOpenOption.READ, more);
        if (writable) {
            options.add(StandardOpenOption.WRITE);
        }
        FileChannel channel = FileChannel.open(path, options);
        try {
            int fd = Native.open(path.toString(), writable);
            return new HostFile(path, name, channel, fd, channel.size(), writable);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    public boolean isWritable() {
        return writable;
    }

    public Path path() {
        return path;
    }

    /** The name as the user gave it (or as it was derived from a backing-file field). */
    public String name() {
        return name;
    }

    public long size() {
        return size;
    }

    /**
     * A read-only view of {@code [hostOffset, hostOffset + length)}, which must lie inside the file.
     * The whole file is mapped once; views cost no copy.
     */
    public MemorySegment slice(long hostOffset, long length) throws IOException {
        if (hostOffset < 0 || length < 0 || hostOffset + length > size) {
            throw new EOFException(name + ": range [0x" + Long.toHexString(hostOffset) + ", 0x"
                    + Long.toHexString(hostOffset + length) + ") lies past the end of the file (size 0x"
                    + Long.toHexString(size) + ")");
        }
        MemorySegment m = mapping;
        if (m == null || m.byteSize() < hostOffset + length) {
            synchronized (this) {
                m = mapping;
                if (m == null || m.byteSize() < hostOffset + length) {
                    // A file that grew is mapped again; older views stay valid until close.
                    long now = size;
                    m = now == 0 ? MemorySegment.NULL : channel.map(FileChannel.MapMode.READ_ONLY, 0, now, arena);
                    mapping = m;
                }
            }
        }
        return m.asSlice(hostOffset, length);
    }

    /**
     * Reads {@code dst.remaining()} bytes at {@code hostOffset}; bytes past the end of the file read as
     * zeroes, as a block device's driver sees them.
     */
    public void read(long hostOffset, ByteBuffer dst) throws IOException {
        long at = hostOffset;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, at);
            if (n < 0) {
                while (dst.hasRemaining()) {
                    dst.put((byte) 0);
                }
                return;
            }
            at += n;
        }
    }

    /** Writes all of {@code src} at {@code hostOffset}, growing the file if needed. */
    public void write(long hostOffset, ByteBuffer src) throws IOException {
        long end = hostOffset + src.remaining();
        if (end > reservedEnd && end > size && src.remaining() >= RESERVE_MIN_WRITE && reserves) {
            reserveAhead(hostOffset, end);
        }
        long at = hostOffset;
        while (src.hasRemaining()) {
            at += channel.write(src, at);
        }
        growTo(end);
        if (syncs && unsynced.addAndGet(end - hostOffset) >= WRITE_BEHIND_BYTES) {
            writeBehind();
        }
    }

    /** Appending writes this large (a sequential copy, not a scattered small write) reserve space ahead. */
    private static final int RESERVE_MIN_WRITE = 1 << 20;
    private static final long RESERVE_MIN_AHEAD = 4L << 20;
    private static final long RESERVE_MAX_AHEAD = 64L << 20;
    private static final int FALLOC_FL_KEEP_SIZE = 1;
    private static final int FALLOC_FL_PUNCH_HOLE = 2;
    /** The end of the host space reserved past the end of the file; changed under this. */
    private volatile long reservedEnd;
    /** Cleared when the file system refuses a reservation: none is tried again. */
    private volatile boolean reserves = true;

    /**
     * Reserves disk space (fallocate with KEEP_SIZE) from {@code from} to some way past {@code end}, for a
     * write that grows the file: it and the appending writes after it then land on allocated blocks.
     * On ext4 a write into unallocated blocks pays delayed allocation block by block (reservation,
     * extent status, buffer heads): a third of the time of a 1 GiB convert. The file's size does not
     * change; what is left unused past its end is released at {@link #close}. A hint: a failure only
     * stops further reservations, and the write itself then reports any real lack of space.
     */
    private synchronized void reserveAhead(long from, long end) {
        if (end <= reservedEnd) {
            return;
        }
        long start = Math.max(from, reservedEnd);
        long to = end + Math.clamp(end / 8, RESERVE_MIN_AHEAD, RESERVE_MAX_AHEAD);
        if (Native.fallocate(fd, FALLOC_FL_KEEP_SIZE, start, to - start) != 0) {
            reserves = false;
            return;
        }
        reservedEnd = to;
    }

    /**
     * Gives {@code [hostOffset, hostOffset + length)} its disk blocks now (fallocate, keeping the size),
     * for a large write about to fill a hole of the file: as with {@link #reserveAhead}, the write then
     * lands on allocated blocks. Only for a range that is written whole right after, or it would stay
     * allocated where the file had a hole. A hint: a failure only stops further calls.
     */
    public void allocate(long hostOffset, long length) {
        if (reserves && Native.fallocate(fd, FALLOC_FL_KEEP_SIZE, hostOffset, length) != 0) {
            reserves = false;
        }
    }

    /**
     * Makes {@code [hostOffset, hostOffset + length)} read as zeroes by deallocating it (fallocate
     * PUNCH_HOLE, keeping the size), as QEMU zeroes a raw file when it may unmap. False when the file
     * (system or device) cannot: write the zeroes then.
     */
    public boolean punchHole(long hostOffset, long length) {
        return Native.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, hostOffset, length) == 0;
    }

    /**
     * Dirty bytes after which their write-back starts early, so that the next sync waits less. Small
     * enough that the disk starts soon after the writes do: with 32 MiB, qemu-img bench's 20,000
     * scattered 4 KiB rewrites (80 MB) waited ~13 ms longer for their final sync (docs/benchmarks.md).
     */
    private static final long WRITE_BEHIND_BYTES = 8L << 20;
    /** Bytes written since the last sync or write-behind; a hint, not an exact count. */
    private final AtomicLong unsynced = new AtomicLong();
    private final AtomicBoolean writeBehindQueued = new AtomicBoolean();
    /** Held while the descriptor is in use by write-behind, and by close, so close never races it. */
    private final Object fdInUse = new Object();
    private boolean closed;

    /** The one thread that starts write-backs for every file, off the writers' threads. */
    private static final class WriteBehind {
        static final Executor THREAD = Executors.newSingleThreadExecutor(
                r -> Thread.ofPlatform().daemon().name("qimg-write-behind").unstarted(r));
    }

    /**
     * Write-behind: asks the kernel (sync_file_range) to start writing this file's dirty pages back,
     * on a background thread and without waiting, once enough were written since the last time.
     * Durability still comes only from {@link #sync}; this makes a later sync shorter.
     */
    private void writeBehind() {
        unsynced.set(0);
        if (!writeBehindQueued.compareAndSet(false, true)) {
            return;
        }
        WriteBehind.THREAD.execute(() -> {
            writeBehindQueued.set(false);
            synchronized (fdInUse) {
                if (!closed) {
                    Native.startWriteBack(fd);
                }
            }
        });
    }

    private void growTo(long end) {
        if (end > size) {
            grow(end);
        }
    }

    private synchronized void grow(long end) {
        if (end > size) {
            size = end;
        }
    }

    /** Sets the file's length (a longer file gets a hole at its end). */
    public synchronized void setLength(long length) throws IOException {
        Native.ftruncate(fd, length);
        if (length <= size) {
            reservedEnd = 0; // shrinking (or keeping) the length frees the blocks past the new end
        }
        size = length;
    }

    private volatile boolean syncs = true;

    /**
     * Turns syncs into no-ops (QEMU's cache=unsafe, which qemu-img convert uses for its output):
     * writes still reach the file in the same order, but nothing waits for the disk.
     */
    public void disableSyncs() {
        syncs = false;
    }

    /** Makes every write so far durable (fdatasync). */
    public void sync() throws IOException {
        if (syncs) {
            unsynced.set(0);
            channel.force(false);
        }
    }

    /** lseek(SEEK_DATA): the next data offset at or after {@code hostOffset}, or -1 if none. */
    public long seekData(long hostOffset) throws IOException {
        if (hostOffset >= size) {
            return -1;
        }
        return Native.lseek(fd, hostOffset, Native.SEEK_DATA);
    }

    /** lseek(SEEK_HOLE): the next hole at or after {@code hostOffset} (the end of file counts), or -1. */
    public long seekHole(long hostOffset) throws IOException {
        if (hostOffset >= size) {
            return -1;
        }
        return Native.lseek(fd, hostOffset, Native.SEEK_HOLE);
    }

    /** Bytes the file occupies on the host's disk. */
    public long allocatedBytes() throws IOException {
        return Native.allocatedBytes(fd);
    }

    @Override
    public void close() throws IOException {
        try {
            synchronized (this) {
                if (reservedEnd > size) {
                    Native.ftruncate(fd, size); // releases the reserved space the writes did not use
                }
            }
        } finally {
            closeDescriptors();
        }
    }

    private void closeDescriptors() throws IOException {
        try {
            channel.close();
        } finally {
            synchronized (fdInUse) {
                closed = true;
            }
            Native.close(fd);
            arena.close();
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
