package org.qimg.image;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.Map;

import org.qimg.ImageException;
import org.qimg.format.L2Entry;
import org.qimg.format.Qcow2Header;
import org.qimg.format.SubclusterType;
import org.qimg.host.HostFile;

/**
 * The write path of a qcow2 layer: allocation with refcounts, copy-on-write from the backing chain
 * (per subcluster with extended L2, per cluster otherwise), zero flags, discard, resize, and a flush
 * that orders metadata so that a crash at any point leaves an image with leaks at worst:
 * <ol>
 *   <li>guest data is synced before any metadata that points at it;</li>
 *   <li>refcount blocks (then the refcount table) are synced before the L2 tables that use the
 *       clusters they count;</li>
 *   <li>L2 tables are synced before the L1 entries that point at them;</li>
 *   <li>refcount decrements are written only after the references are gone on disk, and freed
 *       clusters are reused only after that.</li>
 * </ol>
 * Metadata changes stay in memory (dirty) until {@link #flush}, which runs on request, when too many
 * tables are dirty, and before the rare table moves (refcount table and L1 growth).
 * Not thread-safe: the device's write lock guards it, except for {@link #inPlaceRuns} and
 * {@link #writeRuns}, which change no metadata and run under its shared lock.
 */
final class Qcow2Writer {
    private static final int MAX_DIRTY_L2 = 1024;

    /** Reads the content that the layers below the top supply (zeroes past their end). */
    @FunctionalInterface
    interface BelowReader {
        void read(long guestOffset, ByteBuffer dst) throws IOException;
    }

    /** Tells whether the layers below read as zero over a range. */
    @FunctionalInterface
    interface BelowZero {
        boolean isZero(long guestOffset, long length) throws IOException;
    }

    private final Qcow2Layer layer;
    private final HostFile file;
    private final HostFile dataFile;
    private final Refcounts refcounts;
    private final BelowReader below;
    private final BelowZero belowZero;
    private final BelowZero readsZero;
    private final boolean hasBacking;
    private final int clusterBits;
    private final long clusterSize;
    private final int l2Bits;
    private final int entryBytes;
    private final boolean extended;
    private final boolean externalData;
    private final boolean dataFileRaw;
    private final int subclusterBits;
    private final long subclusterSize;
    private final boolean v3;
    private final int nbSnapshots;
    private long l1Offset;
    private final BitSet dirtyL1 = new BitSet();
    private final Map<Long, Long> pendingFrees = new LinkedHashMap<>();
    private long freeHint;
    /** Host byte offset of free room after the last compressed cluster written, or -1. */
    private long compressedNext = -1;
    /** Written by in-place writes under the device's shared lock too, read by {@link #flush}. */
    private volatile boolean dataDirty;

    Qcow2Writer(Qcow2Layer layer, BelowReader below, BelowZero belowZero, BelowZero readsZero) throws IOException {
        this.readsZero = readsZero;
        this.layer = layer;
        this.file = layer.file();
        this.dataFile = layer.dataFile();
        this.refcounts = layer.refcounts();
        this.below = below;
        this.belowZero = belowZero;
        this.hasBacking = layer.backing() != null;
        Qcow2Header h = layer.header();
        if (h.corrupt()) {
            throw new ImageException(file.name() + ": the image is marked corrupt; it can only be opened read-only");
        }
        if (h.dirty()) {
            throw new ImageException(file.name() + ": the image is dirty (lazy refcounts); repair its refcounts "
                    + "before writing (qimg check -r all)");
        }
        this.clusterBits = h.clusterBits();
        this.clusterSize = h.clusterSize();
        this.l2Bits = h.l2Bits();
        this.entryBytes = h.l2EntryBytes();
        this.extended = h.extendedL2();
        this.externalData = h.hasDataFile();
        this.dataFileRaw = h.dataFileRaw();
        this.subclusterBits = clusterBits - 5;
        this.subclusterSize = 1L << subclusterBits;
        this.v3 = h.version() >= 3;
        this.nbSnapshots = h.nbSnapshots();
        this.l1Offset = h.l1TableOffset();
        if (h.bitmapCount() > 0 || (h.autoclearFeatures() & Qcow2Header.AUTOCLEAR_BITMAPS) != 0) {
            dropBitmaps(h);
        } else if (v3 && h.autoclearFeatures() != 0) {
            // qcow2.txt: a writer that does not maintain what autoclear bits promise (bitmaps, a raw
            // external data file) clears them before its first write.
            long keep = h.autoclearFeatures() & Qcow2Header.AUTOCLEAR_DATA_FILE_RAW;
            if (keep != h.autoclearFeatures()) {
                file.write(88, ByteBuffer.allocate(8).putLong(0, keep));
                file.sync();
            }
        }
    }

    /**
     * qimg does not maintain persistent bitmaps, so before its first write it removes them: the
     * header loses the bitmaps extension and the autoclear bit (qcow2.txt asks a writer that does not
     * understand them to clear it), then the clusters of the directory, the bitmap tables and their
     * data are freed. A crash in between leaks them at worst.
     */
    private void dropBitmaps(Qcow2Header h) throws IOException {
        java.util.List<Long> clusters = new java.util.ArrayList<>();
        long dirOffset = h.bitmapDirectoryOffset();
        long dirSize = h.bitmapDirectorySize();
        if (h.bitmapCount() > 0 && dirOffset > 0 && dirSize > 0 && dirSize <= (64L << 20)
                && dirOffset + dirSize <= file.size()) {
            ByteBuffer dir = ByteBuffer.allocate((int) dirSize);
            file.read(dirOffset, dir);
            for (long c = dirOffset >>> clusterBits; c <= (dirOffset + dirSize - 1) >>> clusterBits; c++) {
                clusters.add(c);
            }
            int at = 0;
            for (int i = 0; i < h.bitmapCount() && at + 24 <= dirSize; i++) {
                long tableOffset = dir.getLong(at);
                long tableEntries = Integer.toUnsignedLong(dir.getInt(at + 8));
                int nameSize = dir.getShort(at + 18) & 0xFFFF;
                long extra = Integer.toUnsignedLong(dir.getInt(at + 20));
                if (tableOffset > 0 && tableEntries > 0 && tableOffset + tableEntries * 8 <= file.size()) {
                    ByteBuffer table = ByteBuffer.allocate((int) (tableEntries * 8));
                    file.read(tableOffset, table);
                    for (long c = tableOffset >>> clusterBits; c <= (tableOffset + tableEntries * 8 - 1) >>> clusterBits; c++) {
                        clusters.add(c);
                    }
                    for (int e = 0; e < tableEntries; e++) {
                        long data = table.getLong(e * 8) & L2Entry.OFFSET_MASK;
                        if (data != 0) {
                            clusters.add(data >>> clusterBits);
                        }
                    }
                }
                at += (int) ((24 + extra + nameSize + 7) & ~7L);
            }
        }
        // Rewrite the extension area without the bitmaps extension, and clear the autoclear bits.
        ByteBuffer head = ByteBuffer.allocate((int) Math.min(clusterSize, file.size()));
        file.read(0, head);
        int from = h.headerLength();
        ByteBuffer rebuilt = ByteBuffer.allocate(head.capacity() - from);
        int at = from;
        int oldEnd = from;
        while (at + 8 <= head.capacity()) {
            int type = head.getInt(at);
            int length = head.getInt(at + 4);
            int padded = (length + 7) & ~7;
            if (type == 0) {
                oldEnd = at + 8;
                break;
            }
            if (type != Qcow2Header.EXT_BITMAPS) {
                rebuilt.put(head.slice(at, 8 + padded));
            }
            at += 8 + padded;
        }
        rebuilt.putLong(0);
        while (rebuilt.position() < oldEnd - from) {
            rebuilt.put((byte) 0);
        }
        rebuilt.flip();
        long keep = h.autoclearFeatures() & Qcow2Header.AUTOCLEAR_DATA_FILE_RAW;
        file.write(88, ByteBuffer.allocate(8).putLong(0, keep));
        file.write(from, rebuilt);
        file.sync();
        for (long c : clusters) {
            if (refcounts.get(c) > 0) {
                free(c, 1);
            }
        }
        applyFrees();
    }

    // ---------------------------------------------------------------- L2 slots

    /** Where one L2 entry lives: its table (in memory) and index. */
    private final class Slot {
        final MemorySegment table;
        final long tableOffset;
        final int index;

        Slot(MemorySegment table, long tableOffset, int index) {
            this.table = table;
            this.tableOffset = tableOffset;
            this.index = index;
        }

        long entry() {
            return table.get(Qcow2Layer.BE_LONG, (long) index * entryBytes);
        }

        long bitmap() {
            return extended ? table.get(Qcow2Layer.BE_LONG, (long) index * entryBytes + 8) : 0;
        }

        void set(long entry, long bitmap) {
            table.set(Qcow2Layer.BE_LONG, (long) index * entryBytes, entry);
            if (extended) {
                table.set(Qcow2Layer.BE_LONG, (long) index * entryBytes + 8, bitmap);
            }
            layer.dirtyL2.put(tableOffset, table);
        }
    }

    /** The L2 slot of a guest cluster, or null when its L1 entry is empty and {@code create} is false. */
    private Slot slot(long clusterIndex, boolean create) throws IOException {
        int l1Index = (int) (clusterIndex >>> l2Bits);
        int l2Index = (int) (clusterIndex & ((1 << l2Bits) - 1));
        long[] l1 = layer.l1();
        if (l1Index >= l1.length) {
            throw new ImageException(file.name() + ": guest cluster " + clusterIndex + " lies past the L1 table");
        }
        long l1Entry = l1[l1Index];
        long l2Offset = L2Entry.l2TableOffset(l1Entry);
        if (l2Offset == 0) {
            if (!create) {
                return null;
            }
            return installTable(l1, l1Index, l2Index, MemorySegment.ofArray(new byte[(int) clusterSize]));
        }
        if ((l1Entry & L2Entry.COPIED) == 0 && create) {
            // The table is shared with a snapshot: copy it before changing it.
            MemorySegment old = layer.l2Table(l1Index);
            Slot slot = installTable(l1, l1Index, l2Index,
                    MemorySegment.ofArray(old.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)));
            free(l2Offset >>> clusterBits, 1);
            return slot;
        }
        return new Slot(layer.l2Table(l1Index), l2Offset, l2Index);
    }

    /** Puts {@code content} in a newly allocated L2 table that L1 entry {@code l1Index} points at. */
    private Slot installTable(long[] l1, int l1Index, int l2Index, MemorySegment content) throws IOException {
        long table = allocateClusters(1);
        layer.dirtyL2.put(table, content);
        layer.l2Cache().invalidate(table);
        l1[l1Index] = table | L2Entry.COPIED;
        dirtyL1.set(l1Index);
        return new Slot(content, table, l2Index);
    }

    // ---------------------------------------------------------------- guest writes

    void write(long guestOffset, ByteBuffer src) throws IOException {
        long at = guestOffset;
        while (src.hasRemaining()) {
            long inCluster = at & (clusterSize - 1);
            if (inCluster == 0 && src.remaining() >= 2 * clusterSize && !externalData) {
                int run = writeFreshClusters(at, src);
                if (run > 0) {
                    at += (long) run << clusterBits;
                    continue;
                }
            }
            int n = (int) Math.min(src.remaining(), clusterSize - inCluster);
            ByteBuffer part = src.slice(src.position(), n);
            writeInCluster(at, part);
            src.position(src.position() + n);
            at += n;
        }
        dataDirty = true;
        maybeFlush();
    }

    /**
     * Where a write of {@code length} bytes at {@code guestOffset} can go without any metadata
     * change: the host runs it covers, as (host offset, length) pairs in guest order, when every byte
     * lies in data this image owns (allocated, not zero, not compressed, not shared with a snapshot);
     * null when any byte does not, for the write path to handle. Reads metadata only.
     */
    long[] inPlaceRuns(long guestOffset, long length) throws IOException {
        long[] l1 = layer.l1();
        long[] runs = new long[4];
        int count = 0;
        long end = guestOffset + length;
        MemorySegment table = null;
        int tableIndex = -1;
        for (long at = guestOffset; at < end; ) {
            long clusterIndex = at >>> clusterBits;
            int l1Index = (int) (clusterIndex >>> l2Bits);
            if (l1Index != tableIndex) {
                if (l1Index >= l1.length || L2Entry.l2TableOffset(l1[l1Index]) == 0) {
                    return null;
                }
                table = layer.l2Table(l1Index);
                tableIndex = l1Index;
            }
            long slot = (clusterIndex & ((1L << l2Bits) - 1)) * entryBytes;
            long entry = table.get(Qcow2Layer.BE_LONG, slot);
            int inCluster = (int) (at & (clusterSize - 1));
            int n = (int) Math.min(end - at, clusterSize - inCluster);
            if (!ownsData(entry, extended ? table.get(Qcow2Layer.BE_LONG, slot + 8) : 0, inCluster, n)) {
                return null;
            }
            long host = L2Entry.hostClusterOffset(entry) + inCluster;
            if (count > 0 && runs[count - 2] + runs[count - 1] == host) {
                runs[count - 1] += n;
            } else {
                if (count == runs.length) {
                    runs = Arrays.copyOf(runs, 2 * count);
                }
                runs[count++] = host;
                runs[count++] = n;
            }
            at += n;
        }
        return Arrays.copyOf(runs, count);
    }

    /** Whether bytes [inCluster, inCluster + n) of a cluster hold data this image may overwrite in place. */
    private boolean ownsData(long entry, long bitmap, int inCluster, int n) {
        if ((entry & L2Entry.COMPRESSED_FLAG) != 0 || ((entry & L2Entry.COPIED) == 0 && !externalData)) {
            return false;
        }
        if (!extended) {
            return L2Entry.classify(entry, externalData) == SubclusterType.NORMAL;
        }
        if (L2Entry.hostClusterOffset(entry) == 0 && !(externalData && (entry & L2Entry.COPIED) != 0)) {
            return false;
        }
        int first = inCluster >>> subclusterBits;
        int last = (inCluster + n - 1) >>> subclusterBits;
        long touched = ((1L << (last - first + 1)) - 1) << first;
        long alloc = bitmap & 0xFFFF_FFFFL;
        long zero = bitmap >>> 32;
        return (alloc & zero) == 0 && (alloc & touched) == touched && (zero & touched) == 0;
    }

    /** Writes {@code src} over the host runs that {@link #inPlaceRuns} gave for it. */
    void writeRuns(long[] runs, ByteBuffer src) throws IOException {
        int at = src.position();
        for (int i = 0; i < runs.length; i += 2) {
            int n = (int) runs[i + 1];
            dataFile.write(runs[i], src.slice(at, n));
            at += n;
        }
        src.position(at);
        dataDirty = true;
    }

    /**
     * Writes a run of whole clusters that are unallocated (no host cluster, no zero flag) to newly
     * allocated contiguous clusters in one write: nothing of them needs copying. Returns how many
     * clusters it wrote (0 when the first one does not qualify); stays within one L2 table.
     */
    private int writeFreshClusters(long guestOffset, ByteBuffer src) throws IOException {
        long clusterIndex = guestOffset >>> clusterBits;
        Slot first = slot(clusterIndex, true);
        int entries = 1 << l2Bits;
        int limit = (int) Math.min(src.remaining() >>> clusterBits, entries - first.index);
        int run = 0;
        while (run < limit) {
            long offset = (long) (first.index + run) * entryBytes;
            long entry = first.table.get(Qcow2Layer.BE_LONG, offset);
            long bitmap = extended ? first.table.get(Qcow2Layer.BE_LONG, offset + 8) : 0;
            if (entry != 0 || bitmap != 0) {
                break;
            }
            run++;
        }
        if (run == 0) {
            return writeInPlaceRun(first, limit, src);
        }
        if (run < 2) {
            return 0;
        }
        long host = allocateClusters(run);
        int bytes = run << clusterBits;
        dataFile.write(host, src.slice(src.position(), bytes));
        src.position(src.position() + bytes);
        for (int i = 0; i < run; i++) {
            Slot slot = new Slot(first.table, first.tableOffset, first.index + i);
            slot.set((host + ((long) i << clusterBits)) | L2Entry.COPIED, extended ? 0xFFFF_FFFFL : 0);
        }
        return run;
    }

    /**
     * Overwrites a run of whole clusters that this image owns (COPIED, all data) and that lie
     * contiguously in the file, in one write.
     */
    private int writeInPlaceRun(Slot first, int limit, ByteBuffer src) throws IOException {
        long host = -1;
        int run = 0;
        while (run < limit) {
            long offset = (long) (first.index + run) * entryBytes;
            long entry = first.table.get(Qcow2Layer.BE_LONG, offset);
            long bitmap = extended ? first.table.get(Qcow2Layer.BE_LONG, offset + 8) : 0;
            long clusterHost = L2Entry.hostClusterOffset(entry);
            boolean follows = host < 0 || clusterHost == host + ((long) run << clusterBits);
            if (!ownsData(entry, bitmap, 0, (int) clusterSize) || !follows) {
                break;
            }
            if (host < 0) {
                host = clusterHost;
            }
            run++;
        }
        if (run < 2) {
            return 0;
        }
        int bytes = run << clusterBits;
        dataFile.write(host, src.slice(src.position(), bytes));
        src.position(src.position() + bytes);
        return run;
    }

    private void writeInCluster(long guestOffset, ByteBuffer data) throws IOException {
        long clusterIndex = guestOffset >>> clusterBits;
        long clusterStart = clusterIndex << clusterBits;
        int inCluster = (int) (guestOffset - clusterStart);
        int n = data.remaining();
        Slot slot = slot(clusterIndex, true);
        long entry = slot.entry();
        boolean copied = (entry & L2Entry.COPIED) != 0 || externalData;
        long host = L2Entry.hostClusterOffset(entry);
        boolean compressed = (entry & L2Entry.COMPRESSED_FLAG) != 0;

        if (!extended || compressed) {
            SubclusterType type = compressed ? SubclusterType.COMPRESSED : L2Entry.classify(entry, externalData);
            if (type == SubclusterType.NORMAL && copied) {
                dataFile.write(host + inCluster, data);
                return;
            }
            boolean whole = inCluster == 0 && n == clusterSize;
            boolean zeroFill = whole || type == SubclusterType.ZERO_PLAIN || type == SubclusterType.ZERO_ALLOC
                    || (type == SubclusterType.UNALLOCATED_PLAIN && belowZero.isZero(clusterStart, clusterSize));
            if (zeroFill && !(type == SubclusterType.ZERO_ALLOC && copied)) {
                // A fresh cluster past the end of the file reads as zero already: write the data only
                // and extend the file sparsely to the cluster's end.
                long fileEnd = dataFile.size();
                long target = allocateData(clusterIndex);
                if (target >= fileEnd) {
                    release(entry, type);
                    dataFile.write(target + inCluster, data);
                    if (dataFile.size() < target + clusterSize) {
                        dataFile.setLength(target + clusterSize);
                    }
                    slot.set(target | L2Entry.COPIED, compressed ? 0xFFFF_FFFFL : 0);
                    return;
                }
                byte[] cluster = new byte[(int) clusterSize];
                data.get(data.position(), cluster, inCluster, n);
                release(entry, type);
                dataFile.write(target, ByteBuffer.wrap(cluster));
                slot.set(target | L2Entry.COPIED, compressed ? 0xFFFF_FFFFL : 0);
                return;
            }
            byte[] cluster = new byte[(int) clusterSize];
            if (!whole) {
                switch (type) {
                    case NORMAL -> dataFile.read(host, ByteBuffer.wrap(cluster));
                    case COMPRESSED -> System.arraycopy(layer.decompress(entry), 0, cluster, 0, cluster.length);
                    case UNALLOCATED_PLAIN -> readBelow(clusterStart, ByteBuffer.wrap(cluster));
                    default -> {
                        // zero clusters: the buffer is zero already
                    }
                }
            }
            data.get(data.position(), cluster, inCluster, n);
            long target;
            if (type == SubclusterType.ZERO_ALLOC && copied) {
                target = host;
            } else {
                target = allocateData(clusterIndex);
                release(entry, type);
            }
            dataFile.write(target, ByteBuffer.wrap(cluster));
            slot.set(target | L2Entry.COPIED, compressed ? 0xFFFF_FFFFL : 0);
            return;
        }

        // Extended L2: only the touched subclusters change state.
        long bitmap = slot.bitmap();
        int first = inCluster >>> subclusterBits;
        int last = (inCluster + n - 1) >>> subclusterBits;
        long touched = ((1L << (last - first + 1)) - 1) << first;
        boolean hostExists = host != 0 || (externalData && (entry & L2Entry.COPIED) != 0);
        long spanStart = (long) first << subclusterBits;
        int spanLength = (int) ((long) (last - first + 1) << subclusterBits);
        if (hostExists && copied) {
            byte[] span = new byte[spanLength];
            fillPartialSubclusters(span, entry, bitmap, host, clusterStart, first, last, inCluster, n);
            data.get(data.position(), span, (int) (inCluster - spanStart), n);
            dataFile.write(host + spanStart, ByteBuffer.wrap(span));
            slot.set(entry, (bitmap | touched) & ~(touched << 32));
            return;
        }
        long target = allocateData(clusterIndex);
        if (hostExists) {
            // Shared with a snapshot: copy every allocated subcluster, then apply the write.
            byte[] cluster = new byte[(int) clusterSize];
            dataFile.read(host, ByteBuffer.wrap(cluster));
            byte[] span = new byte[spanLength];
            fillPartialSubclusters(span, entry, bitmap, host, clusterStart, first, last, inCluster, n);
            System.arraycopy(span, 0, cluster, (int) spanStart, spanLength);
            data.get(data.position(), cluster, inCluster, n);
            dataFile.write(target, ByteBuffer.wrap(cluster));
            slot.set(target | L2Entry.COPIED, (bitmap | touched) & ~(touched << 32));
            release(entry, SubclusterType.NORMAL);
            return;
        }
        byte[] span = new byte[spanLength];
        fillPartialSubclusters(span, entry, bitmap, 0, clusterStart, first, last, inCluster, n);
        data.get(data.position(), span, (int) (inCluster - spanStart), n);
        dataFile.write(target + spanStart, ByteBuffer.wrap(span));
        slot.set(target | L2Entry.COPIED, touched | ((bitmap >>> 32) & ~touched) << 32);
    }

    /**
     * Fills the parts of the first and last touched subclusters that the write does not cover, with
     * what they read as now: their data, the backing image's, or zeroes.
     */
    private void fillPartialSubclusters(byte[] span, long entry, long bitmap, long host, long clusterStart,
                                        int first, int last, int inCluster, int n) throws IOException {
        long spanStart = (long) first << subclusterBits;
        int[] edges = first == last ? new int[] {first} : new int[] {first, last};
        for (int sc : edges) {
            long scStart = (long) sc << subclusterBits;
            boolean coveredWhole = inCluster <= scStart && inCluster + n >= scStart + subclusterSize;
            if (coveredWhole) {
                continue;
            }
            SubclusterType type = L2Entry.classifyExtended(entry, bitmap, sc, externalData);
            ByteBuffer part = ByteBuffer.wrap(span, (int) (scStart - spanStart), (int) subclusterSize);
            switch (type) {
                case NORMAL -> dataFile.read(host + scStart, part);
                case UNALLOCATED_PLAIN, UNALLOCATED_ALLOC -> readBelow(clusterStart + scStart, part);
                default -> {
                    // zero subclusters stay zero
                }
            }
        }
    }

    private void readBelow(long guestOffset, ByteBuffer dst) throws IOException {
        long limit = layer.size();
        if (guestOffset >= limit) {
            return;
        }
        ByteBuffer inside = dst.slice(dst.position(), (int) Math.min(dst.remaining(), limit - guestOffset));
        below.read(guestOffset, inside);
    }

    /**
     * Stores one whole guest cluster compressed (qcow2.txt, "Compressed Clusters"), packing it at byte
     * granularity after the previous compressed cluster; every host cluster a compressed cluster
     * touches counts one more reference. Clusters that do not shrink are written normally.
     */
    /**
     * The compressed form of one cluster, or null when it would not be smaller (it is then written
     * as it is). Reads only the image's settings: it needs no lock, so callers compress in parallel.
     */
    byte[] pack(byte[] cluster) throws IOException {
        if (cluster.length != clusterSize) {
            throw new IllegalArgumentException("a compressed write takes one whole cluster");
        }
        return externalData ? null
                : org.qimg.format.Compression.compress(layer.header().compressionType(), cluster,
                        (int) Math.min(clusterSize - 512, (clusterSize >>> 9 << 9)));
    }

    /** Writes a cluster as {@link #pack} made it: compressed, or as it is when {@code packed} is null. */
    void writeCompressed(long clusterIndex, byte[] cluster, byte[] packed) throws IOException {
        if (packed == null) {
            write(clusterIndex << clusterBits, ByteBuffer.wrap(cluster));
            return;
        }
        Slot slot = slot(clusterIndex, true);
        long old = slot.entry();
        long offset;
        if (compressedNext >= 0 && (compressedNext & (clusterSize - 1)) + packed.length <= clusterSize
                && (compressedNext & (clusterSize - 1)) != 0) {
            offset = compressedNext;
            long c = offset >>> clusterBits;
            refcounts.set(c, refcounts.get(c) + 1);
        } else {
            offset = allocateClusters(1);
        }
        dataFile.write(offset, ByteBuffer.wrap(packed));
        compressedNext = offset + packed.length;
        long sectors = ((offset + packed.length - 1) >>> 9) - (offset >>> 9);
        long entry = L2Entry.COMPRESSED_FLAG | (sectors << L2Entry.compressedOffsetBits(clusterBits)) | offset;
        release(old, (old & L2Entry.COMPRESSED_FLAG) != 0 ? SubclusterType.COMPRESSED
                : L2Entry.hostClusterOffset(old) != 0 ? SubclusterType.NORMAL : SubclusterType.UNALLOCATED_PLAIN);
        slot.set(entry, 0);
        dataDirty = true;
        maybeFlush();
    }

    // ---------------------------------------------------------------- zeroes and discard

    void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        long end = guestOffset + length;
        long unit = extended ? subclusterSize : clusterSize;
        long at = guestOffset;
        while (at < end) {
            long clusterIndex = at >>> clusterBits;
            long clusterStart = clusterIndex << clusterBits;
            long clusterEnd = Math.min(layer.size(), clusterStart + clusterSize);
            long chunkEnd = Math.min(end, clusterEnd);
            // Units (subclusters, or clusters) wholly zeroed form one run; QEMU also zeroes a partial
            // unit whole when the rest of it reads as zero and it holds no data of its own.
            long runStart = -1;
            long runEnd = -1;
            for (long piece = at; piece < chunkEnd; ) {
                long unitStart = clusterStart + (piece - clusterStart) / unit * unit;
                long unitEnd = Math.min(clusterEnd, unitStart + unit);
                long pieceEnd = Math.min(chunkEnd, unitEnd);
                boolean whole = piece == unitStart && pieceEnd == unitEnd;
                if (!whole && unitHoldsNoData(clusterIndex, unitStart - clusterStart)
                        && readsZero.isZero(unitStart, piece - unitStart)
                        && readsZero.isZero(pieceEnd, unitEnd - pieceEnd)) {
                    whole = true;
                }
                if (whole) {
                    if (runStart < 0) {
                        runStart = unitStart;
                    }
                    runEnd = unitEnd;
                } else {
                    zeroRun(clusterIndex, clusterStart, clusterEnd, runStart, runEnd, mayUnmap);
                    runStart = -1;
                    writeInCluster(piece, ByteBuffer.allocate((int) (pieceEnd - piece)));
                }
                piece = pieceEnd;
            }
            zeroRun(clusterIndex, clusterStart, clusterEnd, runStart, runEnd, mayUnmap);
            at = chunkEnd;
        }
        dataDirty = true;
        maybeFlush();
    }

    private void zeroRun(long clusterIndex, long clusterStart, long clusterEnd, long runStart, long runEnd,
                         boolean mayUnmap) throws IOException {
        if (runStart < 0) {
            return;
        }
        if (runStart == clusterStart && runEnd == clusterEnd) {
            zeroCluster(clusterIndex, mayUnmap);
        } else {
            zeroSubclusters(clusterIndex, (int) ((runStart - clusterStart) >>> subclusterBits),
                    (int) ((runEnd - 1 - clusterStart) >>> subclusterBits), runStart, runEnd - runStart);
        }
    }

    /** Whether the top layer holds no data in the unit at {@code inCluster} (it may still be allocated). */
    private boolean unitHoldsNoData(long clusterIndex, long inCluster) throws IOException {
        Slot slot = slot(clusterIndex, false);
        if (slot == null) {
            return true;
        }
        SubclusterType type = extended
                ? L2Entry.classifyExtended(slot.entry(), slot.bitmap(), (int) (inCluster >>> subclusterBits), externalData)
                : L2Entry.classify(slot.entry(), externalData);
        return !type.data();
    }

    private void zeroCluster(long clusterIndex, boolean mayUnmap) throws IOException {
        long clusterStart = clusterIndex << clusterBits;
        long length = Math.min(clusterSize, layer.size() - clusterStart);
        Slot existing = slot(clusterIndex, false);
        long entry = existing == null ? 0 : existing.entry();
        long bitmap = existing == null ? 0 : existing.bitmap();
        boolean unallocated = entry == 0 && bitmap == 0;
        if (unallocated && (!hasBacking || belowZero.isZero(clusterStart, length))) {
            return; // reads as zero already
        }
        if (dataFileRaw) {
            // The raw data file must hold the guest's content on its own.
            dataFile.write(clusterStart, ByteBuffer.allocate((int) length));
        }
        if (!v3 && !extended) {
            // No zero flag in v2: unmap where the chain below reads as zero, else write zeroes.
            if (!hasBacking || belowZero.isZero(clusterStart, length)) {
                Slot slot = slot(clusterIndex, true);
                release(slot.entry(), L2Entry.classify(slot.entry(), externalData));
                slot.set(0, 0);
            } else {
                writeInCluster(clusterStart, ByteBuffer.allocate((int) length));
            }
            return;
        }
        Slot slot = slot(clusterIndex, true);
        entry = slot.entry();
        boolean compressed = (entry & L2Entry.COMPRESSED_FLAG) != 0;
        long host = L2Entry.hostClusterOffset(entry);
        boolean copied = (entry & L2Entry.COPIED) != 0 || externalData;
        boolean hostExists = !compressed && (host != 0 || (externalData && (entry & L2Entry.COPIED) != 0));
        boolean keep = hostExists && copied && !mayUnmap;
        if (extended) {
            if (keep) {
                slot.set(entry, 0xFFFF_FFFF_0000_0000L);
            } else {
                release(entry, compressed ? SubclusterType.COMPRESSED
                        : hostExists ? SubclusterType.NORMAL : SubclusterType.UNALLOCATED_PLAIN);
                slot.set(0, 0xFFFF_FFFF_0000_0000L);
            }
            return;
        }
        if (keep) {
            slot.set(host | L2Entry.COPIED | L2Entry.ZERO_FLAG, 0);
        } else {
            release(entry, L2Entry.classify(entry, externalData));
            slot.set(L2Entry.ZERO_FLAG, 0);
        }
    }

    private void zeroSubclusters(long clusterIndex, int first, int last, long guestOffset, long length)
            throws IOException {
        Slot slot = slot(clusterIndex, true);
        long entry = slot.entry();
        if ((entry & L2Entry.COMPRESSED_FLAG) != 0) {
            writeInCluster(guestOffset, ByteBuffer.allocate((int) length));
            return;
        }
        if (dataFileRaw) {
            dataFile.write(guestOffset, ByteBuffer.allocate((int) length));
        }
        long mask = ((1L << (last - first + 1)) - 1) << first;
        long bitmap = slot.bitmap();
        slot.set(entry, (bitmap & ~mask) | (mask << 32));
    }

    /**
     * Discards whole clusters (a partial one only at the end of the image), as QEMU does: the range
     * then reads as zeroes, except in a v2 image with a backing file, where it shows the backing.
     */
    void discard(long guestOffset, long length) throws IOException {
        long end = guestOffset + length;
        long at = guestOffset;
        while (at < end) {
            long clusterIndex = at >>> clusterBits;
            long inCluster = at & (clusterSize - 1);
            long n = Math.min(end - at, clusterSize - inCluster);
            if (inCluster == 0 && (n == clusterSize || at + n == layer.size())) {
                discardCluster(clusterIndex);
            }
            at += n;
        }
        maybeFlush();
    }

    private void discardCluster(long clusterIndex) throws IOException {
        Slot existing = slot(clusterIndex, false);
        long entry = existing == null ? 0 : existing.entry();
        boolean compressed = (entry & L2Entry.COMPRESSED_FLAG) != 0;
        boolean hostExists = compressed || L2Entry.hostClusterOffset(entry) != 0
                || (externalData && (entry & L2Entry.COPIED) != 0);
        if (!hasBacking && !hostExists) {
            return;
        }
        long newEntry = extended ? 0 : v3 ? L2Entry.ZERO_FLAG : 0;
        long newBitmap = extended ? 0xFFFF_FFFF_0000_0000L : 0;
        if (existing == null && newEntry == 0 && newBitmap == 0) {
            return;
        }
        Slot slot = slot(clusterIndex, true);
        entry = slot.entry();
        release(entry, compressed ? SubclusterType.COMPRESSED
                : hostExists ? SubclusterType.NORMAL : SubclusterType.UNALLOCATED_PLAIN);
        slot.set(newEntry, newBitmap);
    }

    // ---------------------------------------------------------------- allocation

    /** The host offset for a new data cluster of guest cluster {@code clusterIndex}. */
    private long allocateData(long clusterIndex) throws IOException {
        if (externalData) {
            return clusterIndex << clusterBits; // external data files map guest offset = host offset
        }
        return allocateClusters(1);
    }

    /** Frees what an entry of {@code type} holds, once the reference to it is gone from the disk. */
    private void release(long entry, SubclusterType type) {
        if (externalData) {
            return;
        }
        switch (type) {
            case NORMAL, ZERO_ALLOC, UNALLOCATED_ALLOC -> {
                long host = L2Entry.hostClusterOffset(entry);
                if (host != 0) {
                    free(host >>> clusterBits, 1);
                }
            }
            case COMPRESSED -> {
                long offset = L2Entry.compressedHostOffset(entry, clusterBits) & ~511L;
                long sectors = ((entry & ~(L2Entry.COPIED | L2Entry.COMPRESSED_FLAG))
                        >>> L2Entry.compressedOffsetBits(clusterBits)) + 1;
                long firstCluster = offset >>> clusterBits;
                long lastCluster = (offset + sectors * 512 - 1) >>> clusterBits;
                free(firstCluster, (int) (lastCluster - firstCluster + 1));
            }
            default -> {
                // nothing held
            }
        }
    }

    private void free(long firstCluster, int count) {
        for (long c = firstCluster; c < firstCluster + count; c++) {
            pendingFrees.merge(c, 1L, Long::sum);
        }
    }

    /** Allocates {@code count} contiguous host clusters with refcount 1; returns the first's offset. */
    long allocateClusters(int count) throws IOException {
        search:
        while (true) {
            long start = freeHint;
            int run = 0;
            while (run < count) {
                if (refcounts.get(start + run) == 0) {
                    run++;
                } else {
                    start = start + run + 1;
                    run = 0;
                }
            }
            for (long c = start; c < start + count; c++) {
                if (!refcounts.tableCovers(c)) {
                    growRefcountTable(c);
                    continue search;
                }
                if (!refcounts.hasBlock(c)) {
                    long blockCluster = refcounts.blockRangeStart(c);
                    refcounts.installBlock(blockCluster / refcounts.blockEntries(), blockCluster);
                    if (blockCluster >= start && blockCluster < start + count) {
                        continue search;
                    }
                }
            }
            for (long c = start; c < start + count; c++) {
                refcounts.set(c, 1);
            }
            freeHint = start + count;
            return start << clusterBits;
        }
    }

    /**
     * Moves the refcount table to a larger one at the end of the file (rare: with 64 KiB clusters one
     * table cluster covers 16 TiB). The new table and the blocks that count it are synced before the
     * header points at them, and the old table is freed only after.
     */
    private void growRefcountTable(long neededCluster) throws IOException {
        flush();
        int oldEntries = refcounts.tableLength();
        long needed = neededCluster / refcounts.blockEntries() + 1;
        long perCluster = clusterSize / 8;
        long entries = Math.max(needed, (long) oldEntries * 2);
        entries = (entries + perCluster - 1) / perCluster * perCluster;
        int tableClusters = (int) (entries / perCluster);
        if (entries * 8 > Qcow2Header.MAX_REFCOUNT_TABLE_BYTES) {
            throw new ImageException(file.name() + ": the refcount table would exceed QEMU's 8 MiB limit");
        }
        long oldOffset = refcounts.tableOffset();
        int oldClusters = refcounts.tableClusters();
        refcounts.extendInMemory((int) entries);
        long tableStart = (file.size() + clusterSize - 1) >>> clusterBits;
        tableStart = Math.max(tableStart, freeHint);
        place:
        while (true) {
            for (long c = tableStart; c < tableStart + tableClusters; c++) {
                if (refcounts.get(c) != 0) {
                    tableStart = c + 1;
                    continue place;
                }
                if (!refcounts.hasBlock(c)) {
                    long blockCluster = refcounts.blockRangeStart(c);
                    refcounts.installBlock(blockCluster / refcounts.blockEntries(), blockCluster);
                    if (blockCluster >= tableStart) {
                        tableStart = blockCluster + 1;
                        continue place;
                    }
                }
            }
            break;
        }
        for (long c = tableStart; c < tableStart + tableClusters; c++) {
            refcounts.set(c, 1);
        }
        refcounts.writeBlocks();
        long newOffset = tableStart << clusterBits;
        long[] table = refcounts.tableCopy();
        ByteBuffer raw = ByteBuffer.allocate((int) (entries * 8));
        for (long e : table) {
            raw.putLong(e);
        }
        file.write(newOffset, raw.flip());
        file.sync();
        ByteBuffer fields = ByteBuffer.allocate(12).putLong(0, newOffset).putInt(8, tableClusters);
        file.write(48, fields);
        file.sync();
        refcounts.replaceTable(table, newOffset, tableClusters);
        freeHint = Math.max(freeHint, tableStart + tableClusters);
        free(oldOffset >>> clusterBits, oldClusters);
        applyFrees();
    }

    // ---------------------------------------------------------------- resize

    void resize(long newSize, ShrinkCheck holesOnly) throws IOException {
        if (newSize < 0 || newSize % 512 != 0) {
            throw new ImageException("The new size must be a non-negative multiple of 512 (got " + newSize + ")");
        }
        long oldSize = layer.size();
        if (newSize < oldSize) {
            if (nbSnapshots > 0) {
                throw new ImageException(file.name() + ": cannot shrink an image with internal snapshots");
            }
            if (!holesOnly.onlyHolesFrom(newSize)) {
                throw new ImageException(file.name() + ": cannot shrink to " + newSize
                        + ": the range past it holds data");
            }
            long firstFree = (newSize + clusterSize - 1) >>> clusterBits;
            long endCluster = (oldSize + clusterSize - 1) >>> clusterBits;
            for (long c = firstFree; c < endCluster; c++) {
                Slot slot = slot(c, false);
                if (slot != null && (slot.entry() != 0 || slot.bitmap() != 0)) {
                    long entry = slot.entry();
                    release(entry, (entry & L2Entry.COMPRESSED_FLAG) != 0 ? SubclusterType.COMPRESSED
                            : L2Entry.hostClusterOffset(entry) != 0 ? SubclusterType.NORMAL
                            : SubclusterType.UNALLOCATED_PLAIN);
                    slot.set(0, 0);
                }
            }
            flush();
        } else {
            long bytesPerL1 = 1L << (clusterBits + l2Bits);
            long neededL1 = newSize == 0 ? 0 : (newSize - 1) / bytesPerL1 + 1;
            if (neededL1 > layer.l1().length) {
                growL1((int) neededL1);
            }
        }
        file.write(24, ByteBuffer.allocate(8).putLong(0, newSize));
        file.sync();
        layer.setSize(newSize);
    }

    /** Whether everything from an offset to the end of the device is a hole. */
    @FunctionalInterface
    interface ShrinkCheck {
        boolean onlyHolesFrom(long guestOffset) throws IOException;
    }

    private void growL1(int entries) throws IOException {
        if ((long) entries * 8 > Qcow2Header.MAX_L1_BYTES) {
            throw new ImageException(file.name() + ": the L1 table would exceed QEMU's 32 MiB limit");
        }
        flush();
        long[] old = layer.l1();
        int clusters = (int) ((entries * 8L + clusterSize - 1) >>> clusterBits);
        long newOffset = allocateClusters(clusters);
        refcounts.writeBlocks();
        if (refcounts.tableDirty()) {
            file.sync();
            refcounts.writeTable();
        }
        file.sync();
        long[] grown = Arrays.copyOf(old, entries);
        ByteBuffer raw = ByteBuffer.allocate(clusters << clusterBits);
        for (long e : grown) {
            raw.putLong(e);
        }
        raw.clear();
        file.write(newOffset, raw);
        file.sync();
        ByteBuffer fields = ByteBuffer.allocate(12).putInt(0, entries).putLong(4, newOffset);
        file.write(36, fields);
        file.sync();
        long oldOffset = l1Offset;
        int oldClusters = (int) ((old.length * 8L + clusterSize - 1) >>> clusterBits);
        l1Offset = newOffset;
        layer.setL1(grown);
        if (old.length > 0) {
            free(oldOffset >>> clusterBits, oldClusters);
        }
        applyFrees();
    }

    // ---------------------------------------------------------------- flush

    private void maybeFlush() throws IOException {
        if (layer.dirtyL2.size() > MAX_DIRTY_L2 || refcounts.tooManyDirtyBlocks()) {
            flush();
        }
    }

    /** Makes every write so far durable, in the order the class comment gives. */
    void flush() throws IOException {
        if (dataDirty) {
            dataFile.sync();
            dataDirty = false;
        }
        boolean wrote = false;
        refcounts.writeBlocks();
        if (refcounts.tableDirty()) {
            file.sync();
            refcounts.writeTable();
        }
        if (!layer.dirtyL2.isEmpty()) {
            file.sync();
            for (Map.Entry<Long, MemorySegment> e : layer.dirtyL2.entrySet()) {
                file.write(e.getKey(), e.getValue().asByteBuffer());
            }
            layer.dirtyL2.clear();
            wrote = true;
        }
        if (!dirtyL1.isEmpty()) {
            file.sync();
            long[] l1 = layer.l1();
            for (int i = dirtyL1.nextSetBit(0); i >= 0; i = dirtyL1.nextSetBit(i + 1)) {
                file.write(l1Offset + 8L * i, ByteBuffer.allocate(8).putLong(0, l1[i]));
            }
            dirtyL1.clear();
            wrote = true;
        }
        file.sync();
        if (!pendingFrees.isEmpty()) {
            applyFrees();
        } else if (wrote) {
            file.sync();
        }
    }

    /** Applies the decrements of clusters whose references are gone on disk, then syncs them. */
    private void applyFrees() throws IOException {
        for (Map.Entry<Long, Long> e : pendingFrees.entrySet()) {
            long cluster = e.getKey();
            long count = refcounts.get(cluster);
            if (count < e.getValue()) {
                throw new ImageException.Corrupt(file.name() + ": refcount of cluster 0x"
                        + Long.toHexString(cluster << clusterBits) + " would drop below zero");
            }
            refcounts.set(cluster, count - e.getValue());
            if (count == e.getValue()) {
                freeHint = Math.min(freeHint, cluster);
            }
        }
        pendingFrees.clear();
        refcounts.writeBlocks();
        file.sync();
    }
}
