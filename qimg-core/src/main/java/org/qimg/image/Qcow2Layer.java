package org.qimg.image;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.qimg.ImageException;
import org.qimg.cache.TableCache;
import org.qimg.format.Compression;
import org.qimg.format.L2Entry;
import org.qimg.format.Qcow2Header;
import org.qimg.format.SubclusterType;
import org.qimg.host.HostFile;
import org.qimg.map.Run;

/**
 * A qcow2 image as one layer of a chain: resolves guest offsets through L1 and L2 tables into runs of
 * one {@link SubclusterType}, and reads the data it holds. Runs are found the way dm-qcow2 does it,
 * but in bulk: an empty L1 entry skips its whole L2 range at once, and runs of unallocated entries
 * inside an L2 table are skipped with one vectorised comparison against zeroes.
 */
public final class Qcow2Layer implements Layer {
    static final ValueLayout.OfLong BE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    /** Zeroes to compare tables against; as large as the largest cluster (2 MiB). */
    private static final MemorySegment ZEROES = Arena.global().allocate(1L << Qcow2Header.MAX_CLUSTER_BITS, 8);

    private final HostFile file;
    private final HostFile dataFile;
    private final Qcow2Header header;
    private volatile long[] l1;
    private volatile long virtualSize;
    private final boolean writable;
    private final Refcounts refcounts;
    /** L2 tables changed by the writer and not yet written: they win over the file. */
    final java.util.Map<Long, MemorySegment> dirtyL2 = new java.util.LinkedHashMap<>();
    private final TableCache<MemorySegment> l2Cache;
    private final TableCache<byte[]> compressedCache;
    private final Layer backing;
    private final int clusterBits;
    private final long clusterSize;
    private final int l2Bits;
    private final int entryBytes;
    private final boolean extended;
    private final boolean externalData;
    private final int subclusterBits;
    private volatile int metadataPreallocation = -1;

    Qcow2Layer(HostFile file, Qcow2Header header, HostFile dataFile, Layer backing, long l2CacheBytes)
            throws IOException {
        this.file = file;
        this.writable = file.isWritable();
        this.virtualSize = header.virtualSize();
        this.header = header;
        this.dataFile = dataFile;
        this.backing = backing;
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.l2Bits = header.l2Bits();
        this.entryBytes = header.l2EntryBytes();
        this.extended = header.extendedL2();
        this.externalData = header.hasDataFile();
        this.subclusterBits = clusterBits - 5;
        int l1Entries = header.l1Size();
        this.l1 = new long[l1Entries];
        if (l1Entries > 0) {
            MemorySegment.copy(file.slice(header.l1TableOffset(), 8L * l1Entries), BE_LONG, 0, l1, 0, l1Entries);
        }
        long tables = Math.max(2, Math.min(l2CacheBytes / clusterSize, Math.max(1, l1Entries)));
        this.l2Cache = new TableCache<>((int) Math.min(Integer.MAX_VALUE, tables), this::loadL2);
        this.compressedCache = new TableCache<>(4, this::decompress);
        this.refcounts = new Refcounts(file, header, writable);
    }

    public Qcow2Header header() {
        return header;
    }

    public HostFile file() {
        return file;
    }

    public HostFile dataFile() {
        return dataFile;
    }

    TableCache<MemorySegment> l2Cache() {
        return l2Cache;
    }

    @Override
    public long size() {
        return virtualSize;
    }

    void setSize(long newSize) {
        virtualSize = newSize;
    }

    long[] l1() {
        return l1;
    }

    void setL1(long[] newL1) {
        l1 = newL1;
    }

    Refcounts refcounts() {
        return refcounts;
    }

    boolean writable() {
        return writable;
    }

    @Override
    public Layer backing() {
        return backing;
    }

    @Override
    public String format() {
        return "qcow2";
    }

    @Override
    public String name() {
        return file.name();
    }

    @Override
    public String hostFileName() {
        return dataFile.name();
    }

    private MemorySegment loadL2(long l2Offset) throws IOException {
        MemorySegment dirty = dirtyL2.get(l2Offset);
        if (dirty != null) {
            return dirty;
        }
        if ((l2Offset & (clusterSize - 1)) != 0) {
            throw new ImageException.Corrupt(file.name() + ": L2 table offset 0x" + Long.toHexString(l2Offset)
                    + " is not aligned to the cluster size " + clusterSize);
        }
        if (l2Offset + clusterSize > file.size()) {
            throw new ImageException.Corrupt(file.name() + ": L2 table at 0x" + Long.toHexString(l2Offset)
                    + " lies past the end of the file (size 0x" + Long.toHexString(file.size()) + ")");
        }
        if (!writable) {
            return file.slice(l2Offset, clusterSize);
        }
        ByteBuffer copy = ByteBuffer.allocate((int) clusterSize);
        file.read(l2Offset, copy);
        return MemorySegment.ofArray(copy.array());
    }

    private long l1Range(int l1Index) {
        return (long) l1Index << (clusterBits + l2Bits);
    }

    MemorySegment l2Table(int l1Index) throws IOException {
        long l2Offset = L2Entry.l2TableOffset(l1[l1Index]);
        try {
            return l2Cache.get(l2Offset);
        } catch (ImageException.Corrupt e) {
            throw new ImageException.Corrupt(e.getMessage() + " (L1 index " + l1Index + ")");
        }
    }

    @Override
    public Run status(long guestOffset, long maxLength) throws IOException {
        long[] l1 = this.l1;
        long end = Math.min(size(), guestOffset + maxLength);
        long clusterIndex = guestOffset >>> clusterBits;
        int l1Index = (int) (clusterIndex >>> l2Bits);
        if (l1Index >= l1.length || L2Entry.l2TableOffset(l1[l1Index]) == 0) {
            int next = l1Index + 1;
            while (next < l1.length && L2Entry.l2TableOffset(l1[next]) == 0 && l1Range(next) < end) {
                next++;
            }
            long runEnd = next >= l1.length ? end : Math.min(end, l1Range(next));
            return Run.unallocated(runEnd - guestOffset);
        }
        MemorySegment table = l2Table(l1Index);
        int entries = 1 << l2Bits;
        int l2Index = (int) (clusterIndex & (entries - 1));
        long tableEnd = Math.min(end, l1Range(l1Index + 1));

        long entry = table.get(BE_LONG, (long) l2Index * entryBytes);
        long bitmap = extended ? table.get(BE_LONG, (long) l2Index * entryBytes + 8) : 0;
        long clusterStart = clusterIndex << clusterBits;
        int subcluster = extended ? (int) ((guestOffset - clusterStart) >>> subclusterBits) : 0;
        SubclusterType type = classify(entry, bitmap, subcluster, l1Index, l2Index);
        long runEnd;
        if (extended && type != SubclusterType.COMPRESSED) {
            runEnd = clusterStart + ((long) (subcluster + L2Entry.sameTypeRun(bitmap, subcluster)) << subclusterBits);
        } else {
            runEnd = clusterStart + clusterSize;
        }
        long hostCluster = type.hasHostOffset() ? L2Entry.hostClusterOffset(entry) : -1;

        // Extend the run over the following entries of this table while they continue it.
        if (runEnd < tableEnd && (!extended || runEnd == clusterStart + clusterSize)) {
            int index = l2Index + 1;
            if (type == SubclusterType.UNALLOCATED_PLAIN) {
                long from = (long) index * entryBytes;
                long to = (long) entries * entryBytes;
                long mismatch = from >= to ? -1 : MemorySegment.mismatch(table, from, to, ZEROES, 0, to - from);
                int firstUsed = mismatch < 0 ? entries : (int) ((from + mismatch) / entryBytes);
                runEnd = Math.min(tableEnd, ((clusterIndex - l2Index) + firstUsed) << clusterBits);
                index = firstUsed;
            }
            long expectedHost = hostCluster < 0 ? -1 : hostCluster + clusterSize;
            while (runEnd < tableEnd && index < entries) {
                long e = table.get(BE_LONG, (long) index * entryBytes);
                long b = extended ? table.get(BE_LONG, (long) index * entryBytes + 8) : 0;
                SubclusterType t = classify(e, b, 0, l1Index, index);
                if (t != type || (expectedHost >= 0 && L2Entry.hostClusterOffset(e) != expectedHost)) {
                    break;
                }
                long nextClusterStart = (clusterIndex - l2Index + index) << clusterBits;
                if (extended && t != SubclusterType.COMPRESSED) {
                    int n = L2Entry.sameTypeRun(b, 0);
                    runEnd = nextClusterStart + ((long) n << subclusterBits);
                    if (n < L2Entry.SUBCLUSTERS) {
                        break;
                    }
                } else {
                    runEnd = nextClusterStart + clusterSize;
                }
                if (expectedHost >= 0) {
                    expectedHost += clusterSize;
                }
                index++;
            }
        }
        long length = Math.min(runEnd, end) - guestOffset;
        long hostOffset = hostCluster < 0 ? -1 : hostCluster + (guestOffset - clusterStart);
        Run run = new Run(length, type.data(), type.zero(), hostOffset, type == SubclusterType.COMPRESSED);
        if (type == SubclusterType.NORMAL && metadataPreallocated()) {
            run = recurseIntoHost(run);
        }
        return run;
    }

    SubclusterType classify(long entry, long bitmap, int subcluster, int l1Index, int l2Index)
            throws ImageException {
        SubclusterType type;
        try {
            type = extended ? L2Entry.classifyExtended(entry, bitmap, subcluster, externalData)
                    : L2Entry.classify(entry, externalData);
        } catch (ImageException.Corrupt e) {
            throw new ImageException.Corrupt(file.name() + ": L2 entry " + l2Index + " of the table at 0x"
                    + Long.toHexString(L2Entry.l2TableOffset(l1[l1Index])) + ": " + e.getMessage());
        }
        if (type.hasHostOffset() && (L2Entry.hostClusterOffset(entry) & (clusterSize - 1)) != 0) {
            throw new ImageException.Corrupt(file.name() + ": cluster offset 0x"
                    + Long.toHexString(L2Entry.hostClusterOffset(entry)) + " unaligned (L2 table at 0x"
                    + Long.toHexString(L2Entry.l2TableOffset(l1[l1Index])) + ", index " + l2Index + ")");
        }
        return type;
    }

    /**
     * With metadata preallocation QEMU asks the host file whether a data run is really written: a host
     * hole reads as zeroes (block/io.c, BDRV_BLOCK_RECURSE), and a hole that reaches the end of the host
     * file makes the whole run read as zeroes.
     */
    private Run recurseIntoHost(Run run) throws IOException {
        long host = run.hostOffset();
        long fileLength = dataFile.size();
        if (host >= fileLength) {
            return new Run(run.length(), true, true, host, false);
        }
        long limit = Math.min(run.length(), fileLength - host);
        long dataAt = dataFile.seekData(host);
        boolean hostData;
        long hostRun;
        if (dataAt < 0) {
            hostData = false;
            hostRun = limit;
        } else if (dataAt == host) {
            hostData = true;
            hostRun = Math.min(limit, dataFile.seekHole(host) - host);
        } else {
            hostData = false;
            hostRun = Math.min(limit, dataAt - host);
        }
        if (host + hostRun == fileLength && !hostData) {
            return new Run(run.length(), true, true, host, false);
        }
        return new Run(hostRun, true, !hostData, host, false);
    }

    /** QEMU's qcow2_detect_metadata_preallocation: far more clusters in use than the file occupies. */
    private boolean metadataPreallocated() throws IOException {
        int known = metadataPreallocation;
        if (known < 0) {
            long realClusters = file.allocatedBytes() / clusterSize;
            long threshold = Math.max(realClusters * 10 / 9, realClusters + 2);
            long endCluster = (file.size() + clusterSize - 1) / clusterSize;
            known = refcounts.countInUse(0, endCluster, threshold) >= threshold ? 1 : 0;
            metadataPreallocation = known;
        }
        return known == 1;
    }

    /** The refcount of host cluster {@code clusterIndex} of the image file. */
    public long refcount(long clusterIndex) throws IOException {
        return refcounts.get(clusterIndex);
    }

    @Override
    public void readData(long guestOffset, ByteBuffer dst) throws IOException {
        long[] l1 = this.l1;
        long at = guestOffset;
        while (dst.hasRemaining()) {
            long clusterIndex = at >>> clusterBits;
            int l1Index = (int) (clusterIndex >>> l2Bits);
            int l2Index = (int) (clusterIndex & ((1 << l2Bits) - 1));
            long inCluster = at & (clusterSize - 1);
            int n = (int) Math.min(dst.remaining(), clusterSize - inCluster);
            if (l1Index >= l1.length || L2Entry.l2TableOffset(l1[l1Index]) == 0) {
                throw new IllegalStateException("no data at guest offset " + at);
            }
            MemorySegment table = l2Table(l1Index);
            long entry = table.get(BE_LONG, (long) l2Index * entryBytes);
            long bitmap = extended ? table.get(BE_LONG, (long) l2Index * entryBytes + 8) : 0;
            int subcluster = extended ? (int) (inCluster >>> subclusterBits) : 0;
            SubclusterType type = classify(entry, bitmap, subcluster, l1Index, l2Index);
            switch (type) {
                case NORMAL -> {
                    // One read for this cluster and the following ones that continue it on the host.
                    n = normalRunBytes(table, l1Index, l2Index, entry, bitmap, inCluster, dst.remaining());
                    dataFile.read(L2Entry.hostClusterOffset(entry) + inCluster, dst.slice(dst.position(), n));
                }
                case COMPRESSED -> {
                    byte[] cluster;
                    try {
                        cluster = compressedCache.get(entry);
                    } catch (ImageException.Corrupt e) {
                        throw new ImageException.Corrupt(e.getMessage() + " (guest offset " + at + ")", e);
                    }
                    dst.put(dst.position(), cluster, (int) inCluster, n);
                }
                default -> throw new IllegalStateException("guest offset " + at + " holds no data (" + type + ")");
            }
            dst.position(dst.position() + n);
            at += n;
        }
    }

    /**
     * How many of the {@code wanted} bytes from {@code inCluster} of the NORMAL cluster at {@code l2Index}
     * lie in one contiguous host range: the cluster's own bytes, then those of the following entries of
     * the same table that are NORMAL and whose host clusters follow on. With extended L2 entries only
     * whole clusters whose subclusters are all NORMAL are joined.
     */
    private int normalRunBytes(MemorySegment table, int l1Index, int l2Index, long entry, long bitmap,
            long inCluster, int wanted) throws ImageException {
        long length = clusterSize - inCluster;
        if (length >= wanted || !wholeNormal(bitmap)) {
            return (int) Math.min(length, wanted);
        }
        long expectedHost = L2Entry.hostClusterOffset(entry) + clusterSize;
        for (int index = l2Index + 1; length < wanted && index < 1 << l2Bits; index++) {
            long e = table.get(BE_LONG, (long) index * entryBytes);
            long b = extended ? table.get(BE_LONG, (long) index * entryBytes + 8) : 0;
            if (classify(e, b, 0, l1Index, index) != SubclusterType.NORMAL
                    || L2Entry.hostClusterOffset(e) != expectedHost || !wholeNormal(b)) {
                break;
            }
            length += clusterSize;
            expectedHost += clusterSize;
        }
        return (int) Math.min(length, wanted);
    }

    /** Whether a cluster known to hold a NORMAL (sub)cluster is NORMAL throughout (always, without subclusters). */
    private boolean wholeNormal(long bitmap) {
        return !extended || L2Entry.sameTypeRun(bitmap, 0) == L2Entry.SUBCLUSTERS;
    }

    byte[] decompress(long entry) throws IOException {
        long host = L2Entry.compressedHostOffset(entry, clusterBits);
        int length = L2Entry.compressedLength(entry, clusterBits);
        if (host >= file.size()) {
            throw new ImageException.Corrupt(file.name() + ": compressed cluster at 0x" + Long.toHexString(host)
                    + " lies past the end of the file (size 0x" + Long.toHexString(file.size()) + ")");
        }
        ByteBuffer compressed = ByteBuffer.allocate((int) Math.min(length, file.size() - host));
        file.read(host, compressed);
        return Compression.decompress(header.compressionType(), compressed.array(), compressed.position(),
                (int) clusterSize, file.name() + ": compressed cluster at 0x" + Long.toHexString(host));
    }

    @Override
    public void close() throws IOException {
        try {
            if (dataFile != file) {
                dataFile.close();
            }
        } finally {
            file.close();
        }
    }
}
