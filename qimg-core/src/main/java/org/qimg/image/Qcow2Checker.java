package org.qimg.image;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import org.qimg.CheckResult;
import org.qimg.CheckResult.Repair;
import org.qimg.ImageException;
import org.qimg.format.L2Entry;
import org.qimg.format.Qcow2Header;
import org.qimg.format.RefcountBlock;
import org.qimg.host.Fallocate;
import org.qimg.host.HostFile;

/**
 * qemu-img check for qcow2 (QEMU 7.2's qcow2_co_check): rebuilds every host cluster's refcount from
 * what references it — the header cluster, the active and the snapshots' L1 tables with their L2
 * tables and data and compressed clusters, the snapshot table, the refcount table and blocks, the
 * bitmap directory and bitmap tables — and compares it with the stored refcounts. A stored count
 * above the references is a leak, one below is a corruption, as are structural faults (misaligned
 * tables, reserved bits, COPIED flags that disagree with the stored refcount). Repairs write
 * corrected refcount entries, flags and, when a stored refcount of 0 hides a used cluster
 * ({@code -r all}), a whole new refcount structure, as QEMU does.
 *
 * <p>Messages QEMU prints on stderr while checking go to the {@code messages} consumer, in the same
 * words. Memory: one byte per host cluster (and pages only where clusters are referenced).
 */
public final class Qcow2Checker {
    static final long L1E_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00L;
    static final long L1E_RESERVED_MASK = 0x7F00_0000_0000_01FFL;
    static final long L2E_STD_RESERVED_MASK = 0x3F00_0000_0000_01FEL;
    static final long REFT_OFFSET_MASK = 0xFFFF_FFFF_FFFF_FE00L;
    static final long REFT_RESERVED_MASK = 0x1FFL;
    static final long ALL_ALLOC = 0xFFFF_FFFFL;
    static final long ALL_ZEROES = 0xFFFF_FFFF_0000_0000L;
    static final int MAX_SNAPSHOTS = 65536;
    static final long MAX_SNAPSHOTS_SIZE = 1024L * MAX_SNAPSHOTS;
    static final int MAX_SNAPSHOT_EXTRA_DATA = 1024;
    static final int BITMAPS_EXTENSION = 0x23852875;
    static final long MAX_BITMAP_DIRECTORY = 64L << 20;
    static final long BME_TABLE_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00L;
    static final long BME_TABLE_RESERVED_MASK = 0xFF00_0000_0000_01FEL;

    private Qcow2Checker() {
    }

    /**
     * Checks {@code image} as {@code qemu-img check [-r leaks|all]} does: with a repair, an image that
     * needed one is checked again and the result is that of the second check, with the repair's counts.
     *
     * @throws ImageException when the image cannot be checked at all (qemu-img: "Check failed: …"), or
     *                        cannot be opened as qcow2
     */
    public static CheckResult check(Path image, Repair repair, Consumer<String> messages) throws IOException {
        return check(image, repair, false, messages);
    }

    /**
     * As {@link #check(Path, Repair, Consumer)}; the image is locked as QEMU locks it (a reader keeps
     * writers away, a repair keeps everyone away) unless {@code forceShare} (qemu-img's -U, read-only).
     */
    public static CheckResult check(Path image, Repair repair, boolean forceShare, Consumer<String> messages)
            throws IOException {
        if (forceShare && repair != Repair.NONE) {
            throw new ImageException("force-share=on can only be used with read-only images (no repair)");
        }
        try (Session session = new Session(image, repair != Repair.NONE, forceShare, messages)) {
            CheckResult first = new Pass(session, repair).run();
            if (!first.repaired()) {
                return first;
            }
            if (session.fatal) {
                // QEMU made the image unusable when it marked it corrupt: the second check cannot run.
                throw failed("No medium found");
            }
            CheckResult again = new Pass(session, Repair.NONE).run();
            return new CheckResult(again.checkErrors(), again.corruptions(), again.leaks(), first.corruptionsFixed(),
                    first.leaksFixed(), again.imageEndOffset(), again.totalClusters(), again.allocatedClusters(),
                    again.fragmentedClusters(), again.compressedClusters());
        }
    }

    /**
     * What lives as long as QEMU keeps the image open across qemu-img's check and re-check: the file,
     * the refcount blocks a repair changed (written back when the image is closed, as QEMU's refcount
     * cache is), and whether a corruption was signalled.
     */
    private static final class Session implements AutoCloseable {
        final Path path;
        final boolean writable;
        final Consumer<String> out;
        final FileChannel file;
        /** Changed refcount blocks by host offset, in the order they were first changed. */
        final java.util.LinkedHashMap<Long, MemorySegment> dirtyBlocks = new java.util.LinkedHashMap<>();
        boolean signalled;
        /** A fatal corruption was signalled: QEMU marked the image corrupt and stopped using it. */
        boolean fatal;
        /** The pass whose view of the metadata QEMU holds in memory when it closes the image. */
        Pass view;

        /** Holds QEMU's image locks for as long as the check runs. */
        private final HostFile lock;
        /** The external data file, opened and locked as QEMU opens it with the image; or null. */
        private final HostFile dataFile;

        Session(Path path, boolean writable, boolean forceShare, Consumer<String> out) throws IOException {
            this.path = path;
            this.writable = writable;
            this.out = out;
            String name = path.toString();
            if (Files.isDirectory(path)) {
                throw new ImageException("Could not open '" + name + "': Is a directory");
            }
            try {
                file = writable ? FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)
                        : FileChannel.open(path, StandardOpenOption.READ);
            } catch (NoSuchFileException e) {
                throw new ImageException("Could not open '" + name + "': No such file or directory");
            } catch (AccessDeniedException e) {
                throw new ImageException("Could not open '" + name + "': Permission denied");
            }
            HostFile holder = null;
            try {
                holder = writable ? HostFile.openReadWrite(path, name) : HostFile.openReadOnly(path, name);
                if (!forceShare) {
                    holder.lock(HostFile.Use.QCOW2);
                }
            } catch (IOException | RuntimeException e) {
                if (holder != null) {
                    holder.close();
                }
                file.close();
                throw e;
            }
            lock = holder;
            try {
                dataFile = openDataFile(file, path, writable, forceShare);
            } catch (IOException | RuntimeException e) {
                holder.close();
                file.close();
                throw e;
            }
        }

        /**
         * QEMU opens (and locks) an image's external data file with it, so a check of an image whose
         * data file is missing fails to open, as qemu-img check's does. A header too broken to name one
         * is left to the check to report.
         */
        private static HostFile openDataFile(FileChannel file, Path path, boolean writable, boolean forceShare)
                throws IOException {
            ByteBuffer first = ByteBuffer.allocate((int) Math.min(file.size(), 1L << Qcow2Header.MAX_CLUSTER_BITS));
            while (first.hasRemaining() && file.read(first, first.position()) > 0) {
                // read the first cluster at most
            }
            first.flip();
            Qcow2Header header;
            try {
                if (!Qcow2Header.hasMagic(first)) {
                    return null;
                }
                header = Qcow2Header.parse(first, Long.MAX_VALUE, path.toString());
            } catch (ImageException e) {
                return null;
            }
            if (!header.hasDataFile()) {
                return null;
            }
            return ChainOpener.openDataFile(header.dataFile(), path.toString(), writable, forceShare);
        }

        /** qcow2_close: the changed refcount blocks are written back, each after QEMU's overlap check. */
        @Override
        public void close() throws IOException {
            try {
                if (writable && !fatal && view != null) {
                    for (var dirty : dirtyBlocks.entrySet()) {
                        long offset = dirty.getKey();
                        String overlap = view.overlap(offset, view.clusterSize, OL_REFCOUNT_BLOCK);
                        if (overlap != null) {
                            view.signalCorruption("Preventing invalid write on metadata (overlaps with " + overlap + ")");
                            continue;
                        }
                        view.write(offset, dirty.getValue().asByteBuffer());
                    }
                    if (!fatal) {
                        view.markClean();
                    }
                }
                if (writable) {
                    file.force(true);
                }
            } finally {
                try {
                    file.close();
                } finally {
                    try {
                        lock.close();
                    } finally {
                        if (dataFile != null) {
                            dataFile.close();
                        }
                    }
                }
            }
        }
    }

    /** QEMU's metadata-overlap kinds (qcow2.h, QCOW2_OL_*), in its order, and their names. */
    static final int OL_MAIN_HEADER = 1;
    static final int OL_ACTIVE_L1 = 1 << 1;
    static final int OL_ACTIVE_L2 = 1 << 2;
    static final int OL_REFCOUNT_TABLE = 1 << 3;
    static final int OL_REFCOUNT_BLOCK = 1 << 4;
    static final int OL_SNAPSHOT_TABLE = 1 << 5;
    static final int OL_INACTIVE_L1 = 1 << 6;
    static final int OL_BITMAP_DIRECTORY = 1 << 8;

    /** An entry of the snapshot table that matters for refcounts. */
    private record Snapshot(String id, String name, long l1Offset, long l1Size) {
    }

    /** The counters of BdrvCheckResult. */
    private static final class Counts {
        long checkErrors;
        long corruptions;
        long leaks;
        long corruptionsFixed;
        long leaksFixed;
        long allocated;
        long fragmented;
        long compressed;

        Counts copy() {
            Counts c = new Counts();
            c.checkErrors = checkErrors;
            c.corruptions = corruptions;
            c.leaks = leaks;
            c.corruptionsFixed = corruptionsFixed;
            c.leaksFixed = leaksFixed;
            c.allocated = allocated;
            c.fragmented = fragmented;
            c.compressed = compressed;
            return c;
        }
    }

    /** C's "%#x": "0" for zero, "0x…" otherwise. */
    static String hex(long value) {
        return value == 0 ? "0" : "0x" + Long.toHexString(value);
    }

    /** Thrown where QEMU's check returns an error code: the check did not complete. */
    private static ImageException failed(String reason) {
        return new ImageException("Check failed: " + reason);
    }

    /** A failed check whose cause QEMU reports on a line of its own before "Check failed". */
    private static ImageException failed(String reason, String cause) {
        return new ImageException("Check failed: " + reason, new ImageException(cause));
    }

    /** One run of qcow2_co_check_locked over the file. */
    private static final class Pass {
        private final Session session;
        private final Path path;
        private final Repair fix;
        private final Consumer<String> out;
        private final FileChannel file;
        private final Qcow2Header header;
        private final int clusterBits;
        private final long clusterSize;
        private final int refcountOrder;
        private final long refcountMax;
        private final int refblockBits;
        private final int l2Entries;
        private final int entryBytes;
        private final boolean extendedL2;
        private final boolean externalData;
        private final long[] activeL1;
        private long[] reftable;
        private long reftableOffset;
        private long incompatibleFeatures;

        private List<Snapshot> snapshots = List.of();
        private long snapshotsSize;
        private long bitmapDirectoryOffset;
        private long bitmapDirectorySize;
        private int bitmapCount;

        private final RefcountArray computed = new RefcountArray();
        private long nbClusters;
        /** The length of the file, as QEMU's bdrv_getlength answers during the check. */
        private long fileLength;
        private Counts res = new Counts();
        private long highestCluster;
        private boolean rebuild;

        /** The refcount block last read from the file, by refcount table index. */
        private long cachedBlockIndex = -1;
        private MemorySegment cachedBlock;

        Pass(Session session, Repair fix) throws IOException {
            this.session = session;
            this.path = session.path;
            this.fix = fix;
            this.out = session.out;
            this.file = session.file;
            String name = path.toString();
            long size = file.size();
            ByteBuffer first = read(0, (int) Math.min(size, 1L << Qcow2Header.MAX_CLUSTER_BITS));
            if (!Qcow2Header.hasMagic(first)) {
                throw new ImageException("'" + name + "': not a qcow2 image (no qcow2 magic)");
            }
            // Like QEMU, tables may reach past the end of the file: they read as zeroes there.
            header = Qcow2Header.parse(first, Long.MAX_VALUE, name);
            clusterBits = header.clusterBits();
            clusterSize = header.clusterSize();
            refcountOrder = header.refcountOrder();
            refcountMax = RefcountBlock.maxValue(refcountOrder);
            refblockBits = clusterBits + 3 - refcountOrder;
            extendedL2 = header.extendedL2();
            entryBytes = header.l2EntryBytes();
            l2Entries = (int) (clusterSize / entryBytes);
            externalData = header.hasDataFile();
            incompatibleFeatures = header.incompatibleFeatures();
            activeL1 = readTable(header.l1TableOffset(), header.l1Size());
            loadReftable(header.refcountTableOffset(), (long) header.refcountTableClusters() * clusterSize / 8);
            readBitmapsExtension(first);
            session.view = this;
        }

        CheckResult run() throws IOException {
            readSnapshotTable();
            checkRefcounts();
            if (fix != Repair.NONE && res.checkErrors == 0 && res.corruptions == 0) {
                markClean();
                markConsistent();
            }
            long totalClusters = Math.ceilDiv(header.virtualSize() / 512 * 512, clusterSize);
            return new CheckResult(res.checkErrors, res.corruptions, res.leaks, res.corruptionsFixed, res.leaksFixed,
                    (highestCluster + 1) * clusterSize, totalClusters, res.allocated, res.fragmented, res.compressed);
        }

        // ---- reading ------------------------------------------------------------------------

        /** {@code length} bytes at {@code hostOffset}; bytes past the end of the file read as zeroes. */
        private ByteBuffer read(long hostOffset, int length) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.BIG_ENDIAN);
            long at = hostOffset;
            while (b.hasRemaining()) {
                int n = file.read(b, at);
                if (n < 0) {
                    break;
                }
                at += n;
            }
            return b.clear();
        }

        private long[] readTable(long hostOffset, long entries) throws IOException {
            long[] table = new long[(int) entries];
            if (entries > 0) {
                ByteBuffer b = read(hostOffset, (int) (entries * 8));
                b.asLongBuffer().get(table);
            }
            return table;
        }

        private void loadReftable(long hostOffset, long entries) throws IOException {
            reftable = readTable(hostOffset, entries);
            reftableOffset = hostOffset;
            cachedBlockIndex = -1;
        }

        void write(long hostOffset, ByteBuffer src) throws IOException {
            long at = hostOffset;
            while (src.hasRemaining()) {
                at += file.write(src, at);
            }
            fileLength = Math.max(fileLength, at);
        }

        private void readBitmapsExtension(ByteBuffer first) throws ImageException {
            if (header.bitmapCount() == 0) {
                return;
            }
            if ((header.autoclearFeatures() & Qcow2Header.AUTOCLEAR_BITMAPS) == 0) {
                // QEMU ignores the bitmaps of a file a program without bitmap support has written.
                out.accept("qcow2: a program lacking bitmap support modified this file, so all bitmaps are now "
                        + "considered inconsistent");
                return;
            }
            int at = header.headerLength();
            int limit = (int) Math.min(clusterSize, first.limit());
            while (at + 8 <= limit) {
                int type = first.getInt(at);
                int length = first.getInt(at + 4);
                if (type == 0) {
                    break;
                }
                if (type == BITMAPS_EXTENSION) {
                    bitmapCount = first.getInt(at + 8);
                    bitmapDirectorySize = first.getLong(at + 16);
                    bitmapDirectoryOffset = first.getLong(at + 24);
                    if (bitmapCount < 1 || bitmapCount > 65535) {
                        throw new ImageException.Corrupt(path + ": bitmaps extension lists " + Integer.toUnsignedString(bitmapCount)
                                + " bitmaps (1..65535)");
                    }
                    if (bitmapDirectorySize < 0 || bitmapDirectorySize > MAX_BITMAP_DIRECTORY) {
                        throw new ImageException.Corrupt(path + ": bitmap directory size " + bitmapDirectorySize
                                + " is out of range");
                    }
                    if (bitmapDirectoryOffset <= 0 || (bitmapDirectoryOffset & (clusterSize - 1)) != 0) {
                        throw new ImageException.Corrupt(path + ": bitmap directory offset 0x"
                                + Long.toHexString(bitmapDirectoryOffset) + " is not cluster aligned");
                    }
                    return;
                }
                at += 8 + ((Integer.toUnsignedLong(length) + 7) & ~7L);
            }
        }

        /**
         * Whether the refcount block that holds {@code cluster}'s refcount cannot be read: its table entry
         * is not cluster aligned (QEMU's qcow2_get_refcount signals a corruption and fails with EIO).
         */
        private boolean storedUnreadable(long cluster) throws IOException {
            long tableIndex = cluster >>> refblockBits;
            if (tableIndex >= reftable.length) {
                return false;
            }
            long blockOffset = reftable[(int) tableIndex] & REFT_OFFSET_MASK;
            if (blockOffset < 0) {
                return true; // beyond what a file offset can be: the read fails (EIO)
            }
            if (blockOffset == 0 || (blockOffset & (clusterSize - 1)) == 0) {
                return false;
            }
            signalCorruption("Refblock offset " + hex(blockOffset) + " unaligned (reftable index: " + hex(tableIndex) + ")");
            return true;
        }

        /** The refcount block at {@code blockOffset}: as a repair left it, else as the file holds it. */
        private MemorySegment block(long tableIndex, long blockOffset) throws IOException {
            MemorySegment dirty = session.dirtyBlocks.get(blockOffset);
            if (dirty != null) {
                return dirty;
            }
            if (cachedBlockIndex != tableIndex) {
                cachedBlock = MemorySegment.ofBuffer(read(blockOffset, (int) clusterSize));
                cachedBlockIndex = tableIndex;
            }
            return cachedBlock;
        }

        /** The stored refcount of {@code cluster} (unsigned), whose block is readable. */
        private long stored(long cluster) throws IOException {
            long tableIndex = cluster >>> refblockBits;
            if (tableIndex >= reftable.length) {
                return 0;
            }
            long blockOffset = reftable[(int) tableIndex] & REFT_OFFSET_MASK;
            if (blockOffset == 0) {
                return 0;
            }
            return RefcountBlock.get(block(tableIndex, blockOffset), (int) (cluster & ((1L << refblockBits) - 1)),
                    refcountOrder);
        }

        /**
         * update_refcount to an absolute value (the block exists: its count was read as non-zero). Like
         * QEMU's refcount cache, the block is written back when the image is closed.
         */
        private void setStored(long cluster, long value) throws IOException {
            long tableIndex = cluster >>> refblockBits;
            long blockOffset = reftable[(int) tableIndex] & REFT_OFFSET_MASK;
            MemorySegment block = session.dirtyBlocks.get(blockOffset);
            if (block == null) {
                block = MemorySegment.ofArray(new byte[(int) clusterSize]);
                block.copyFrom(block(tableIndex, blockOffset));
                session.dirtyBlocks.put(blockOffset, block);
            }
            RefcountBlock.set(block, (int) (cluster & ((1L << refblockBits) - 1)), refcountOrder, value);
            if (value == 0) {
                // QEMU discards a cluster a repair frees (QCOW2_DISCARD_ALWAYS): the host file gets a hole.
                file.force(false);
                Fallocate.punchHole(path, cluster << clusterBits, clusterSize);
            }
        }

        /**
         * qcow2_signal_corruption. On an image opened for a repair the corruption is fatal: the image is
         * marked corrupt and QEMU stops using it; read-only, it is only reported. Either way once.
         */
        void signalCorruption(String message) throws IOException {
            boolean fatal = session.writable;
            if (session.signalled && (!fatal || (incompatibleFeatures & Qcow2Header.INCOMPAT_CORRUPT) != 0)) {
                return;
            }
            if (fatal) {
                out.accept("qcow2: Marking image as corrupt: " + message + "; further corruption events will be suppressed");
                incompatibleFeatures |= Qcow2Header.INCOMPAT_CORRUPT;
                writeFeatures();
                session.fatal = true;
            } else {
                out.accept("qcow2: Image is corrupt: " + message + "; further non-fatal corruption events will be suppressed");
            }
            session.signalled = true;
        }

        /**
         * qcow2_check_metadata_overlap with QEMU's default checks ("cached"): the name of the metadata
         * that {@code [hostOffset, hostOffset + size)} would overwrite, or null.
         */
        String overlap(long hostOffset, long size, int ignore) {
            if (size == 0) {
                return null;
            }
            if ((ignore & OL_MAIN_HEADER) == 0 && hostOffset < clusterSize) {
                return "qcow2_header";
            }
            long start = hostOffset & ~(clusterSize - 1);
            long end = (hostOffset + size + clusterSize - 1) & ~(clusterSize - 1);
            if ((ignore & OL_ACTIVE_L1) == 0 && activeL1.length > 0
                    && overlaps(start, end, header.l1TableOffset(), activeL1.length * 8L)) {
                return "active L1 table";
            }
            if ((ignore & OL_REFCOUNT_TABLE) == 0 && reftable.length > 0
                    && overlaps(start, end, reftableOffset, reftable.length * 8L)) {
                return "refcount table";
            }
            if ((ignore & OL_SNAPSHOT_TABLE) == 0 && overlaps(start, end, header.snapshotsOffset(), snapshotsSize)) {
                return "snapshot table";
            }
            if ((ignore & OL_INACTIVE_L1) == 0) {
                for (Snapshot sn : snapshots) {
                    if (sn.l1Size() != 0 && overlaps(start, end, sn.l1Offset(), sn.l1Size() * 8)) {
                        return "inactive L1 table";
                    }
                }
            }
            if ((ignore & OL_ACTIVE_L2) == 0) {
                for (long entry : activeL1) {
                    long l2 = entry & L1E_OFFSET_MASK;
                    if (l2 != 0 && overlaps(start, end, l2, clusterSize)) {
                        return "active L2 table";
                    }
                }
            }
            if ((ignore & OL_REFCOUNT_BLOCK) == 0) {
                for (long entry : reftable) {
                    long block = entry & REFT_OFFSET_MASK;
                    if (block != 0 && overlaps(start, end, block, clusterSize)) {
                        return "refcount block";
                    }
                }
            }
            if ((ignore & OL_BITMAP_DIRECTORY) == 0 && bitmapCount != 0
                    && overlaps(start, end, bitmapDirectoryOffset, bitmapDirectorySize)) {
                return "bitmap directory";
            }
            return null;
        }

        private static boolean overlaps(long start, long end, long offset, long size) {
            return size > 0 && offset < end && start < offset + size;
        }

        /** qcow2_pre_write_overlap_check: false (after signalling) when the write would hit other metadata. */
        private boolean mayWrite(long hostOffset, long size, int ignore) throws IOException {
            String hit = overlap(hostOffset, size, ignore);
            if (hit == null) {
                return true;
            }
            signalCorruption("Preventing invalid write on metadata (overlaps with " + hit + ")");
            return false;
        }

        // ---- qcow2_check_read_snapshot_table ------------------------------------------------

        private void readSnapshotTable() throws IOException {
            int count = header.nbSnapshots();
            long offset = header.snapshotsOffset();
            if (count == 0) {
                return;
            }
            List<Snapshot> list = new ArrayList<>(count);
            long at = offset;
            boolean dropped = false;
            for (int i = 0; i < count; i++) {
                at = (at + 7) & ~7L;
                ByteBuffer h = read(at, 40);
                long l1Offset = h.getLong(0);
                long l1Size = Integer.toUnsignedLong(h.getInt(8));
                int idLength = Short.toUnsignedInt(h.getShort(12));
                int nameLength = Short.toUnsignedInt(h.getShort(14));
                long extra = Integer.toUnsignedLong(h.getInt(36));
                at += 40;
                if (extra > MAX_SNAPSHOT_EXTRA_DATA) {
                    out.accept("qcow2: Too much extra metadata in snapshot table entry " + i
                            + "; discarding the excess");
                    dropped = true;
                }
                at += extra;
                String id = new String(read(at, idLength).array(), java.nio.charset.StandardCharsets.UTF_8);
                at += idLength;
                String name = new String(read(at, nameLength).array(), java.nio.charset.StandardCharsets.UTF_8);
                at += nameLength;
                if (at - offset > MAX_SNAPSHOTS_SIZE) {
                    res.checkErrors++;
                    out.accept("ERROR failed to read the snapshot table: Snapshot table is too big");
                    throw failed("File too large");
                }
                list.add(new Snapshot(id, name, l1Offset, l1Size));
            }
            if (dropped) {
                res.corruptions++;
            }
            snapshots = list;
            snapshotsSize = at - offset;
        }

        // ---- qcow2_check_refcounts ----------------------------------------------------------

        private void checkRefcounts() throws IOException {
            fileLength = file.size();
            nbClusters = Math.ceilDiv(fileLength, clusterSize);
            if (nbClusters > RefcountArray.MAX_ENTRIES) {
                res.checkErrors++;
                throw failed("File too large");
            }
            // A byte per host cluster: refuse rather than run out of memory half-way.
            if (nbClusters > Runtime.getRuntime().maxMemory() / 2) {
                res.checkErrors++;
                throw failed("Cannot allocate memory (" + nbClusters + " host clusters need about "
                        + (nbClusters >> 20) + " MiB; raise the Java heap with -Xmx)");
            }
            calculateRefcounts(fix);
            Counts preCompare = res.copy();
            compareRefcounts(Repair.NONE);
            if (rebuild && fix.errors()) {
                rebuildAndRecount();
            } else if (fix != Repair.NONE) {
                if (rebuild) {
                    out.accept("ERROR need to rebuild refcount structures");
                    res.checkErrors++;
                    throw failed("Input/output error");
                }
                if (res.leaks != 0 || res.corruptions != 0) {
                    res = preCompare;
                    compareRefcounts(fix);
                }
            }
            checkCopiedFlags();
        }

        private void calculateRefcounts(Repair mode) throws IOException {
            inc(0, clusterSize);
            checkL1(header.l1TableOffset(), header.l1Size(), true, mode);
            if (externalData && !snapshots.isEmpty()) {
                out.accept("ERROR " + snapshots.size() + " snapshots in image with data file");
                res.corruptions++;
            }
            for (Snapshot sn : snapshots) {
                if ((sn.l1Offset() & (clusterSize - 1)) != 0) {
                    out.accept("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_offset=0x"
                            + Long.toHexString(sn.l1Offset())
                            + ": L1 table is not cluster aligned; snapshot table entry corrupted");
                    res.corruptions++;
                    continue;
                }
                if (sn.l1Size() > Qcow2Header.MAX_L1_BYTES / 8) {
                    out.accept("ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_size=0x"
                            + Long.toHexString(sn.l1Size()) + ": L1 table is too large; snapshot table entry corrupted");
                    res.corruptions++;
                    continue;
                }
                checkL1(sn.l1Offset(), sn.l1Size(), false, mode);
            }
            inc(header.snapshotsOffset(), snapshotsSize);
            inc(reftableOffset, reftable.length * 8L);
            checkBitmaps();
            checkRefblocks(mode);
        }

        /** qcow2_inc_refcounts_imrt: one more reference to every cluster of the range. */
        private void inc(long hostOffset, long size) throws ImageException {
            if (size <= 0) {
                return;
            }
            // The last cluster may be partly past the end of the file; a cluster or more past it is not.
            if (hostOffset + size - fileLength >= clusterSize) {
                out.accept("ERROR: counting reference for region exceeding the end of the file by one cluster or more: "
                        + "offset 0x" + Long.toHexString(hostOffset) + " size 0x" + Long.toHexString(size));
                res.corruptions++;
                return;
            }
            long first = hostOffset >>> clusterBits;
            long last = (hostOffset + size - 1) >>> clusterBits;
            for (long k = first; k <= last; k++) {
                if (k >= nbClusters) {
                    growTo(k + 1);
                }
                long count = computed.get(k);
                if (count == refcountMax) {
                    out.accept("ERROR: overflow cluster offset=0x" + Long.toHexString(k << clusterBits));
                    out.accept("Use qemu-img amend to increase the refcount entry width or qemu-img convert to create "
                            + "a clean copy if the image cannot be opened for writing");
                    res.corruptions++;
                    continue;
                }
                computed.set(k, count + 1);
            }
        }

        private void growTo(long clusters) throws ImageException {
            if (clusters > RefcountArray.MAX_ENTRIES) {
                // QEMU fails to grow its array here (-ENOMEM).
                res.checkErrors++;
                throw failed("Cannot allocate memory (a reference to host cluster " + (clusters - 1)
                        + " lies far beyond the end of the file)");
            }
            nbClusters = Math.max(nbClusters, clusters);
        }

        private void checkL1(long l1Offset, long l1Size, boolean active, Repair mode) throws IOException {
            if (l1Size == 0) {
                return;
            }
            inc(l1Offset, l1Size * 8);
            if (l1Offset < 0) {
                out.accept("ERROR: I/O error in check_refcounts_l1");
                res.checkErrors++;
                throw failed("Input/output error");
            }
            long[] l1 = active ? activeL1 : readTable(l1Offset, l1Size);
            for (int i = 0; i < l1.length; i++) {
                long entry = l1[i];
                if (entry == 0) {
                    continue;
                }
                if ((entry & L1E_RESERVED_MASK) != 0) {
                    out.accept("ERROR found L1 entry with reserved bits set: " + Long.toHexString(entry));
                    res.corruptions++;
                }
                long l2Offset = entry & L1E_OFFSET_MASK;
                inc(l2Offset, clusterSize);
                if ((l2Offset & (clusterSize - 1)) != 0) {
                    out.accept("ERROR l2_offset=" + Long.toHexString(l2Offset)
                            + ": Table is not cluster aligned; L1 entry corrupted");
                    res.corruptions++;
                }
                checkL2(l2Offset, active, mode);
            }
        }

        /** qcow2_get_cluster_type as QEMU 7.2 applies it to a whole entry (the zero flag only without subclusters). */
        private ClusterType clusterType(long entry) {
            if ((entry & L2Entry.COMPRESSED_FLAG) != 0) {
                return ClusterType.COMPRESSED;
            }
            if ((entry & L2Entry.ZERO_FLAG) != 0 && !extendedL2) {
                return (entry & L2Entry.OFFSET_MASK) != 0 ? ClusterType.ZERO_ALLOC : ClusterType.ZERO_PLAIN;
            }
            if ((entry & L2Entry.OFFSET_MASK) == 0) {
                return externalData && (entry & L2Entry.COPIED) != 0 ? ClusterType.NORMAL : ClusterType.UNALLOCATED;
            }
            return ClusterType.NORMAL;
        }

        private enum ClusterType { UNALLOCATED, ZERO_PLAIN, ZERO_ALLOC, NORMAL, COMPRESSED }

        private void checkL2(long l2Offset, boolean active, Repair mode) throws IOException {
            ByteBuffer table = read(l2Offset, (int) clusterSize);
            long nextContiguous = 0;
            for (int i = 0; i < l2Entries; i++) {
                long entry = table.getLong(i * entryBytes);
                long bitmap = extendedL2 ? table.getLong(i * entryBytes + 8) : 0;
                ClusterType type = clusterType(entry);
                if (type != ClusterType.COMPRESSED && (entry & L2E_STD_RESERVED_MASK) != 0) {
                    out.accept("ERROR found l2 entry with reserved bits set: " + Long.toHexString(entry));
                    res.corruptions++;
                }
                switch (type) {
                    case COMPRESSED -> {
                        if ((entry & L2Entry.COPIED) != 0) {
                            out.accept("ERROR: coffset=0x" + Long.toHexString(L2Entry.compressedHostOffset(entry, clusterBits))
                                    + ": copied flag must never be set for compressed clusters");
                            entry &= ~L2Entry.COPIED;
                            res.corruptions++;
                        }
                        if (externalData) {
                            out.accept("ERROR compressed cluster " + i + " with data file, entry=0x" + Long.toHexString(entry));
                            res.corruptions++;
                            break;
                        }
                        if (bitmap != 0) {
                            out.accept("ERROR compressed cluster " + i + " with non-zero subcluster allocation bitmap, entry=0x"
                                    + Long.toHexString(entry));
                            res.corruptions++;
                            break;
                        }
                        inc(L2Entry.compressedHostOffset(entry, clusterBits), L2Entry.compressedLength(entry, clusterBits));
                        if (active) {
                            res.allocated++;
                            res.compressed++;
                            // Compressed clusters are fragmented by nature (QEMU counts each one).
                            res.fragmented++;
                        }
                    }
                    case ZERO_ALLOC, NORMAL -> {
                        long offset = entry & L2Entry.OFFSET_MASK;
                        if (((bitmap >>> 32) & bitmap) != 0) {
                            res.corruptions++;
                            out.accept("ERROR offset=" + Long.toHexString(offset)
                                    + ": Allocated cluster has corrupted subcluster allocation bitmap");
                        }
                        if ((offset & (clusterSize - 1)) != 0) {
                            res.corruptions++;
                            boolean containsData = extendedL2 ? (bitmap & ALL_ALLOC) != 0 : (entry & L2Entry.ZERO_FLAG) == 0;
                            if (!containsData) {
                                out.accept((mode.errors() ? "Repairing" : "ERROR") + " offset=" + Long.toHexString(offset)
                                        + ": Preallocated cluster is not properly aligned; L2 entry corrupted.");
                                if (mode.errors() && zeroL2Entry(l2Offset, i, bitmap, active)) {
                                    continue;
                                }
                            } else {
                                out.accept("ERROR offset=" + Long.toHexString(offset)
                                        + ": Data cluster is not properly aligned; L2 entry corrupted.");
                            }
                        }
                        if (active) {
                            res.allocated++;
                            if (nextContiguous != 0 && offset != nextContiguous) {
                                res.fragmented++;
                            }
                            nextContiguous = offset + clusterSize;
                        }
                        if (!externalData) {
                            inc(offset, clusterSize);
                        }
                    }
                    case ZERO_PLAIN -> {
                        // Reads as zeroes; references nothing.
                    }
                    case UNALLOCATED -> {
                        if ((bitmap & ALL_ALLOC) != 0) {
                            res.corruptions++;
                            out.accept("ERROR: Unallocated cluster has non-zero subcluster allocation map");
                        }
                    }
                }
            }
        }

        /**
         * fix_l2_entry_by_zero: a misaligned preallocated cluster becomes a plain zero cluster, unless the
         * write would hit other metadata, which ends the check.
         */
        private boolean zeroL2Entry(long l2Offset, int index, long bitmap, boolean active) throws IOException {
            long at = l2Offset + (long) index * entryBytes;
            if (!mayWrite(at, entryBytes, active ? OL_ACTIVE_L2 : 0)) {
                // QEMU stops the whole check here: something is seriously wrong.
                out.accept("ERROR: Overlap check failed");
                res.checkErrors++;
                throw failed("Input/output error");
            }
            ByteBuffer b = ByteBuffer.allocate(entryBytes).order(ByteOrder.BIG_ENDIAN);
            if (extendedL2) {
                long zeroBits = (bitmap | (bitmap << 32)) & ALL_ZEROES;
                b.putLong(0, 0).putLong(8, zeroBits);
            } else {
                b.putLong(0, L2Entry.ZERO_FLAG);
            }
            write(at, b);
            file.force(false);
            res.corruptions--;
            res.corruptionsFixed++;
            return true;
        }

        /** qcow2_check_bitmaps_refcounts: the directory, each bitmap table and the clusters it names. */
        private void checkBitmaps() throws IOException {
            if (bitmapCount == 0) {
                return;
            }
            inc(bitmapDirectoryOffset, bitmapDirectorySize);
            ByteBuffer dir = read(bitmapDirectoryOffset, (int) bitmapDirectorySize);
            List<long[]> tables = new ArrayList<>();
            int at = 0;
            for (int n = 0; n < bitmapCount; n++) {
                if (at + 24 > bitmapDirectorySize) {
                    res.corruptions++;
                    out.accept("qcow2: bitmap directory ends inside entry " + n);
                    throw failed("Invalid argument");
                }
                long tableOffset = dir.getLong(at);
                long tableSize = Integer.toUnsignedLong(dir.getInt(at + 8));
                int nameSize = Short.toUnsignedInt(dir.getShort(at + 18));
                long extra = Integer.toUnsignedLong(dir.getInt(at + 20));
                long entryLength = (24 + extra + nameSize + 7) & ~7L;
                if (at + entryLength > bitmapDirectorySize || nameSize == 0
                        || (tableOffset & (clusterSize - 1)) != 0 || tableSize > (1L << 24)) {
                    res.corruptions++;
                    out.accept("qcow2: bitmap directory entry " + n + " at 0x"
                            + Long.toHexString(bitmapDirectoryOffset + at) + " is invalid");
                    throw failed("Invalid argument");
                }
                tables.add(new long[] {tableOffset, tableSize});
                at += (int) entryLength;
            }
            for (long[] t : tables) {
                inc(t[0], t[1] * 8);
                long[] entries = readTable(t[0], t[1]);
                for (long entry : entries) {
                    long offset = entry & BME_TABLE_OFFSET_MASK;
                    boolean bad = (entry & BME_TABLE_RESERVED_MASK) != 0
                            || (offset != 0 && ((entry & 1) != 0 || (offset & (clusterSize - 1)) != 0));
                    if (bad) {
                        res.corruptions++;
                        continue;
                    }
                    if (offset != 0) {
                        inc(offset, clusterSize);
                    }
                }
            }
        }

        /** check_refblocks: every refcount block is aligned, inside the image, and used exactly once. */
        private void checkRefblocks(Repair mode) throws IOException {
            for (int i = 0; i < reftable.length; i++) {
                long entry = reftable[i];
                long offset = entry & REFT_OFFSET_MASK;
                long cluster = offset >>> clusterBits;
                if ((entry & REFT_RESERVED_MASK) != 0) {
                    out.accept("ERROR refcount table entry " + i + " has reserved bits set");
                    res.corruptions++;
                    rebuild = true;
                    continue;
                }
                if ((offset & (clusterSize - 1)) != 0) {
                    out.accept("ERROR refcount block " + i + " is not cluster aligned; refcount table entry corrupted");
                    res.corruptions++;
                    rebuild = true;
                    continue;
                }
                if (cluster >= nbClusters) {
                    res.corruptions++;
                    out.accept((mode.errors() ? "Repairing" : "ERROR") + " refcount block " + i + " is outside image");
                    if (mode.errors()) {
                        String failure = Long.compareUnsigned(offset, Long.MAX_VALUE - clusterSize) > 0 ? "Invalid argument"
                                : growFile(offset + clusterSize);
                        if (failure != null) {
                            rebuild = true;
                            out.accept("ERROR could not resize image: " + failure);
                            continue;
                        }
                        growTo(Math.ceilDiv(fileLength, clusterSize));
                        res.corruptions--;
                        res.corruptionsFixed++;
                        inc(offset, clusterSize);
                    }
                    continue;
                }
                if (offset != 0) {
                    inc(offset, clusterSize);
                    long count = computed.get(cluster);
                    if (count != 1) {
                        out.accept("ERROR refcount block " + i + " refcount=" + Long.toUnsignedString(count));
                        res.corruptions++;
                        rebuild = true;
                    }
                }
            }
        }

        /** Grows the file sparsely to {@code length} (ftruncate); the reason it could not, or null. */
        private String growFile(long length) {
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                if (f.length() < length) {
                    f.setLength(length);
                }
                fileLength = Math.max(fileLength, f.length());
                return null;
            } catch (IOException e) {
                String reason = e.getMessage() == null ? e.toString() : e.getMessage();
                return reason.contains("File too large") ? "File too large" : reason;
            }
        }

        /** compare_refcounts: stored against computed, fixing what {@code mode} allows. */
        private void compareRefcounts(Repair mode) throws IOException {
            highestCluster = 0;
            for (long i = 0; i < nbClusters; i++) {
                if (storedUnreadable(i)) {
                    out.accept("Can't get refcount for cluster " + i + ": Input/output error");
                    res.checkErrors++;
                    continue;
                }
                long stored = stored(i);
                long reference = computed.get(i);
                if (stored != 0 || reference != 0) {
                    highestCluster = i;
                }
                if (stored == reference) {
                    continue;
                }
                boolean repair = false;
                boolean leak = Long.compareUnsigned(stored, reference) > 0;
                if (stored == 0) {
                    rebuild = true;
                } else if (leak && mode.leaks()) {
                    repair = true;
                } else if (!leak && mode.errors()) {
                    repair = true;
                }
                out.accept((repair ? "Repairing" : leak ? "Leaked" : "ERROR") + " cluster " + i + " refcount="
                        + Long.toUnsignedString(stored) + " reference=" + Long.toUnsignedString(reference));
                if (repair) {
                    setStored(i, reference);
                    if (leak) {
                        res.leaksFixed++;
                    } else {
                        res.corruptionsFixed++;
                    }
                    continue;
                }
                if (leak) {
                    res.leaks++;
                } else {
                    res.corruptions++;
                }
            }
        }

        /** check_oflag_copied: COPIED must be set exactly where the stored refcount is 1 (active tables only). */
        private void checkCopiedFlags() throws IOException {
            boolean repair = fix.errors()
                    || (fix.leaks() && res.checkErrors == 0 && res.corruptions == 0 && res.leaks == 0);
            for (int i = 0; i < activeL1.length; i++) {
                long l1Entry = activeL1[i];
                long l2Offset = l1Entry & L1E_OFFSET_MASK;
                if (l2Offset == 0) {
                    continue;
                }
                long refcount = storedReadable(l2Offset >>> clusterBits);
                if (refcount == Long.MIN_VALUE) {
                    continue;
                }
                if ((refcount == 1) != ((l1Entry & L2Entry.COPIED) != 0)) {
                    res.corruptions++;
                    out.accept((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED L2 cluster: l1_index=" + i
                            + " l1_entry=" + Long.toHexString(l1Entry) + " refcount=" + Long.toUnsignedString(refcount));
                    if (repair) {
                        activeL1[i] = refcount == 1 ? l1Entry | L2Entry.COPIED : l1Entry & ~L2Entry.COPIED;
                        long at = header.l1TableOffset() + 8L * i;
                        if (!mayWrite(at, 8, OL_ACTIVE_L1)) {
                            res.checkErrors++;
                            throw failed("Input/output error");
                        }
                        write(at, ByteBuffer.allocate(8).putLong(0, activeL1[i]));
                        res.corruptions--;
                        res.corruptionsFixed++;
                    }
                }
                ByteBuffer table = read(l2Offset, (int) clusterSize);
                int dirty = 0;
                for (int j = 0; j < l2Entries; j++) {
                    long entry = table.getLong(j * entryBytes);
                    ClusterType type = clusterType(entry);
                    if (type != ClusterType.NORMAL && type != ClusterType.ZERO_ALLOC) {
                        continue;
                    }
                    long count = externalData ? 1 : storedReadable((entry & L2Entry.OFFSET_MASK) >>> clusterBits);
                    if (count == Long.MIN_VALUE) {
                        continue;
                    }
                    if ((count == 1) != ((entry & L2Entry.COPIED) != 0)) {
                        res.corruptions++;
                        out.accept((repair ? "Repairing" : "ERROR") + " OFLAG_COPIED data cluster: l2_entry="
                                + Long.toHexString(entry) + " refcount=" + Long.toUnsignedString(count));
                        if (repair) {
                            table.putLong(j * entryBytes, count == 1 ? entry | L2Entry.COPIED : entry & ~L2Entry.COPIED);
                            dirty++;
                        }
                    }
                }
                if (dirty > 0) {
                    if (!mayWrite(l2Offset, clusterSize, OL_ACTIVE_L2)) {
                        out.accept("ERROR: Could not write L2 table; metadata overlap check failed: Input/output error");
                        res.checkErrors++;
                        throw failed("Input/output error");
                    }
                    write(l2Offset, table.clear());
                    res.corruptions -= dirty;
                    res.corruptionsFixed += dirty;
                }
            }
        }

        /** The stored refcount, or Long.MIN_VALUE when its block cannot be read (QEMU skips those silently). */
        private long storedReadable(long cluster) throws IOException {
            if (storedUnreadable(cluster)) {
                return Long.MIN_VALUE;
            }
            return stored(cluster);
        }

        // ---- rebuilding the refcount structure (-r all) ---------------------------------------

        private void rebuildAndRecount() throws IOException {
            Counts old = res.copy();
            out.accept("Rebuilding refcount structure");
            rebuildRefcountStructure();
            res.corruptions = 0;
            res.leaks = 0;
            rebuild = false;
            computed.clear();
            calculateRefcounts(Repair.NONE);
            // The old refcount structures are leaked now; freeing them is not counted as a repair.
            Counts saved = res;
            res = new Counts();
            compareRefcounts(Repair.LEAKS);
            if (rebuild) {
                out.accept("ERROR rebuilt refcount structure is still broken");
            }
            long freshLeaks = res.leaks;
            res = saved;
            if (res.corruptions < old.corruptions) {
                res.corruptionsFixed += old.corruptions - res.corruptions;
            }
            if (res.leaks < old.leaks) {
                res.leaksFixed += old.leaks - res.leaks;
            }
            res.leaks += freshLeaks;
        }

        /**
         * rebuild_refcount_structure: writes refcount blocks for every range of clusters in use, taken
         * from the computed counts, into free clusters; then a new refcount table, and points the
         * header at it.
         */
        private void rebuildRefcountStructure() throws IOException {
            session.dirtyBlocks.clear(); // qcow2_cache_empty: QEMU drops its cached refcount blocks
            long[][] onDisk = {new long[0]};
            boolean changed = writeRefblocks(0, nbClusters, onDisk);
            if (!changed) {
                throw new IllegalStateException("rebuilding wrote no refcount block");
            }
            long tableOffset;
            int tableClusters;
            do {
                long tableLength = onDisk[0].length * 8L;
                tableClusters = (int) Math.ceilDiv(tableLength, clusterSize);
                long[] firstFree = {0};
                tableOffset = allocInMemory(tableClusters, firstFree);
                long start = tableOffset >>> clusterBits;
                long end = start + tableClusters;
                changed = writeRefblocks(start, end, onDisk);
                if (changed) {
                    for (long c = start; c < end; c++) {
                        computed.set(c, 0);
                    }
                }
            } while (changed);
            long[] table = onDisk[0];
            ByteBuffer bytes = ByteBuffer.allocate(table.length * 8).order(ByteOrder.BIG_ENDIAN);
            bytes.asLongBuffer().put(table);
            if (!mayWrite(tableOffset, bytes.capacity(), 0)) {
                res.checkErrors++;
                throw failed("Input/output error", "ERROR writing reftable: Input/output error");
            }
            write(tableOffset, bytes);
            file.force(false);
            ByteBuffer fields = ByteBuffer.allocate(12).order(ByteOrder.BIG_ENDIAN);
            fields.putLong(0, tableOffset).putInt(8, tableClusters);
            write(48, fields);
            file.force(false);
            reftable = table;
            reftableOffset = tableOffset;
            cachedBlockIndex = -1;
        }

        /** rebuild_refcounts_write_refblocks; returns whether the table had to grow. */
        private boolean writeRefblocks(long firstCluster, long endCluster, long[][] onDisk) throws IOException {
            long blockEntries = 1L << refblockBits;
            long[] firstFree = {0};
            boolean changed = false;
            for (long cluster = firstCluster; cluster < endCluster; cluster++) {
                if (computed.pageEmpty(cluster)) {
                    cluster = (cluster | (RefcountArray.pageSize() - 1));
                    continue;
                }
                if (computed.get(cluster) == 0) {
                    continue;
                }
                long blockIndex = cluster >>> refblockBits;
                long blockStart = blockIndex << refblockBits;
                long blockOffset;
                if (onDisk[0].length > blockIndex && onDisk[0][(int) blockIndex] != 0) {
                    blockOffset = onDisk[0][(int) blockIndex];
                } else {
                    if (firstFree[0] < blockStart) {
                        firstFree[0] = blockStart;
                    }
                    blockOffset = allocInMemory(1, firstFree);
                    long blockCluster = blockOffset >>> clusterBits;
                    if (blockCluster >= endCluster) {
                        endCluster = blockCluster + 1;
                    }
                    if (onDisk[0].length <= blockIndex) {
                        long entries = Math.ceilDiv((blockIndex + 1) * 8, clusterSize) * clusterSize / 8;
                        onDisk[0] = java.util.Arrays.copyOf(onDisk[0], (int) entries);
                        changed = true;
                    }
                    onDisk[0][(int) blockIndex] = blockOffset;
                }
                if (!mayWrite(blockOffset, clusterSize, 0)) {
                    res.checkErrors++;
                    throw failed("Input/output error", "ERROR writing refblock: Input/output error");
                }
                byte[] block = new byte[(int) clusterSize];
                MemorySegment view = MemorySegment.ofArray(block);
                for (long j = 0; j < blockEntries; j++) {
                    long count = computed.get(blockStart + j);
                    if (count != 0) {
                        RefcountBlock.set(view, (int) j, refcountOrder, count);
                    }
                }
                write(blockOffset, ByteBuffer.wrap(block));
                cluster = blockStart + blockEntries - 1;
            }
            return changed;
        }

        /** alloc_clusters_imrt: {@code count} free clusters in the computed counts, from {@code firstFree}. */
        private long allocInMemory(long count, long[] firstFree) throws ImageException {
            long cluster = firstFree[0];
            boolean firstGap = true;
            long contiguous = 0;
            for (; cluster < nbClusters && contiguous < count; cluster++) {
                if (computed.get(cluster) == 0) {
                    contiguous++;
                    if (firstGap) {
                        firstFree[0] = cluster;
                        firstGap = false;
                    }
                } else if (contiguous != 0) {
                    contiguous = 0;
                }
            }
            if (contiguous < count) {
                growTo(cluster + count - contiguous);
            }
            cluster -= contiguous;
            for (long i = 0; i < count; i++) {
                computed.set(cluster + i, 1);
            }
            return cluster << clusterBits;
        }

        /** qcow2_mark_clean: the dirty bit goes once refcounts are right. */
        void markClean() throws IOException {
            if ((incompatibleFeatures & Qcow2Header.INCOMPAT_DIRTY) != 0) {
                incompatibleFeatures &= ~Qcow2Header.INCOMPAT_DIRTY;
                writeFeatures();
            }
        }

        /** qcow2_mark_consistent: a repaired image is no longer marked corrupt. */
        private void markConsistent() throws IOException {
            if ((incompatibleFeatures & Qcow2Header.INCOMPAT_CORRUPT) != 0) {
                incompatibleFeatures &= ~Qcow2Header.INCOMPAT_CORRUPT;
                writeFeatures();
            }
        }

        /** The incompatible feature bits of the header (a v2 header has none to write). */
        private void writeFeatures() throws IOException {
            if (header.version() >= 3) {
                write(72, ByteBuffer.allocate(8).putLong(0, incompatibleFeatures));
                file.force(false);
            }
        }
    }
}
