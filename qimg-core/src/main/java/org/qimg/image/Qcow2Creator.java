package org.qimg.image;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import org.qimg.BlockDevice;
import org.qimg.CreateOptions;
import org.qimg.CreateOptions.Preallocation;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.format.HeaderEncoder;
import org.qimg.format.L2Entry;
import org.qimg.format.Qcow2Header;
import org.qimg.format.RefcountBlock;
import org.qimg.host.Fallocate;
import org.qimg.host.HostFile;

/**
 * Creates qcow2 images the way {@code qemu-img create -f qcow2} (QEMU 7.2) does: the same option
 * checks, and the same file, cluster for cluster. The layout comes from replaying QEMU's sequence in
 * {@link CreateAllocator}: header, refcount table and first refcount block in clusters 0 to 2, the
 * L1 table next (with more refcount blocks after it when it needs them), then for
 * {@code preallocation=metadata} each L2 table followed by its data clusters, and for
 * {@code falloc}/{@code full} a fresh refcount table, one run of data clusters and the L2 tables
 * last, as qcow2_co_truncate does.
 */
public final class Qcow2Creator {
    /** The block drivers of QEMU 7.2, the names a backing format may take. */
    private static final Set<String> QEMU_FORMATS = Set.of("blkdebug", "blklogwrites", "blkverify", "bochs", "cloop",
            "compress", "copy-before-write", "copy-on-read", "dmg", "file", "ftp", "ftps", "gluster", "host_cdrom",
            "host_device", "http", "https", "iscsi", "iser", "luks", "nbd", "nfs", "null-aio", "null-co", "nvme",
            "parallels", "preallocate", "qcow", "qcow2", "qed", "quorum", "raw", "rbd", "replication",
            "snapshot-access", "ssh", "throttle", "vdi", "vhdx", "vmdk", "vpc", "vvfat");
    private static final int ZERO_CHUNK = 1 << 20;
    /** QEMU's file driver writes the first block of a file it grows from empty (allocate_first_block). */
    private static final int FIRST_BLOCK = 4096;

    private Qcow2Creator() {
    }

    /** What {@link #create} made. */
    public record Created(Path image, long virtualSize, Path dataFile) {
    }

    /**
     * Creates (or overwrites) {@code image}. A relative backing file name is stored as given and
     * resolved against the image's folder only to read the backing size when {@code options} has
     * none. The data file name is stored as given and the data file created (or overwritten) at that
     * name, relative to the working directory, as qemu-img does.
     */
    public static Created create(Path image, CreateOptions options) throws IOException {
        Plan plan = plan(image, options);
        // qemu-img creates (and QEMU 7.2 opens) a relative data file name against the working directory.
        Path dataPath = options.dataFile() == null ? null : Path.of(options.dataFile());
        if (Files.isDirectory(image)) {
            throw new ImageException("Could not create '" + image + "': Is a directory");
        }
        if (dataPath != null && Files.isDirectory(dataPath)) {
            throw new ImageException("Could not create data file '" + dataPath + "': Is a directory");
        }
        // Locked first, as qemu-img does: an image in use elsewhere is refused before it is truncated
        // (and never deleted by the clean-up below).
        try (HostFile imageLock = HostFile.openForCreation(image, image.toString());
             HostFile dataLock = dataPath == null ? null : HostFile.openForCreation(dataPath, dataPath.toString())) {
            boolean ok = false;
            try {
                write(image, dataPath, plan);
                ok = true;
            } finally {
                if (!ok) {
                    Files.deleteIfExists(image);
                    if (dataPath != null) {
                        Files.deleteIfExists(dataPath);
                    }
                }
            }
        }
        return new Created(image, plan.virtualSize, dataPath);
    }

    /** Validates {@code options} as qcow2_co_create does and works out the virtual size. */
    static long validate(Path image, CreateOptions o) throws IOException {
        int version = o.version();
        if (version < 0) {
            throw new ImageException("Parameter 'compat' does not accept value '" + o.compat()
                    + "' (0.10, 1.1, v2 or v3)");
        }
        String v3Hint = " (use compat=1.1 or greater)";
        long cs = o.clusterSize();
        if (cs < 512 || cs > (2 << 20) || Long.bitCount(cs) != 1) {
            throw new ImageException("Cluster size must be a power of two between 512 and 2048k (cluster_size="
                    + cs + ")");
        }
        int bits = o.refcountBits();
        if (bits < 1 || bits > 64 || Integer.bitCount(bits) != 1) {
            throw new ImageException("Refcount width must be a power of two and may not exceed 64 bits (refcount_bits="
                    + bits + ")");
        }
        if (version < 3 && bits != 16) {
            throw new ImageException("Different refcount widths than 16 bits require compatibility level 1.1 or above"
                    + v3Hint);
        }
        if (version < 3 && o.lazyRefcounts()) {
            throw new ImageException("Lazy refcounts only supported with compatibility level 1.1 and above" + v3Hint);
        }
        if (o.extendedL2()) {
            if (version < 3) {
                throw new ImageException("Extended L2 entries are only supported with compatibility level 1.1 and above"
                        + v3Hint);
            }
            if (cs < (16 << 10)) {
                throw new ImageException("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");
            }
        }
        String compression = o.compressionType() == null ? "zlib" : o.compressionType();
        if (!compression.equals("zlib") && !compression.equals("zstd")) {
            throw new ImageException("Parameter 'compression_type' does not accept value '" + compression
                    + "' (zlib or zstd)");
        }
        if (version < 3 && !compression.equals("zlib")) {
            throw new ImageException("Non-zlib compression type is only supported with compatibility level 1.1 and above"
                    + v3Hint);
        }
        if (o.dataFile() != null) {
            if (version < 3) {
                throw new ImageException("External data files are only supported with compatibility level 1.1 and above"
                        + v3Hint);
            }
            if (o.dataFile().isEmpty()) {
                throw new ImageException("data_file must not be empty");
            }
        } else if (o.dataFileRaw()) {
            throw new ImageException("data-file-raw requires data-file");
        }
        if (o.backingFile() != null) {
            if (o.backingFile().isEmpty()) {
                throw new ImageException("backing_file must not be empty");
            }
            if (o.dataFileRaw()) {
                throw new ImageException("Backing file and data-file-raw cannot be used at the same time");
            }
            if (o.backingFormat() == null) {
                throw new ImageException("Backing file specified without backing format");
            }
            if (!QEMU_FORMATS.contains(o.backingFormat())) {
                throw new ImageException("Parameter 'backing_fmt' does not accept value '" + o.backingFormat() + "'");
            }
            if (o.preallocation() != Preallocation.OFF && !o.extendedL2()) {
                throw new ImageException("Backing file and preallocation can only be used at the same time if extended_l2 is on");
            }
        } else if (o.backingFormat() != null) {
            throw new ImageException("Backing format cannot be used without backing file");
        }

        long size = o.size();
        if (size == CreateOptions.SIZE_OF_BACKING) {
            if (o.backingFile() == null) {
                throw new ImageException("Image creation needs a size parameter");
            }
            size = backingSize(image, o);
        } else if (size < 0) {
            throw new ImageException("Image size cannot be negative (size=" + size + ")");
        }
        if (size > Long.MAX_VALUE - 511) {
            throw new ImageException("The image size is too large for file format 'qcow2' (size=" + size + ")");
        }
        size = (size + 511) & ~511L;
        long l2Entries = cs / (o.extendedL2() ? 16 : 8);
        long l1Entries = Math.ceilDiv(Math.ceilDiv(size, cs), l2Entries);
        if (l1Entries * 8 > Qcow2Header.MAX_L1_BYTES) {
            throw new ImageException("The image size is too large for file format 'qcow2' (try using a larger cluster size)");
        }
        return size;
    }

    /**
     * The backing image's virtual size, reading it through its own format. Read with force-share, as
     * qemu-img create reads it: a base that a VM is writing can still get an overlay.
     */
    private static long backingSize(Path image, CreateOptions o) throws IOException {
        String format = o.backingFormat();
        if (!format.equals("qcow2") && !format.equals("raw")) {
            throw new ImageException.Unsupported("cannot read the size of backing file '" + o.backingFile()
                    + "' in format '" + format + "' (qcow2 and raw are readable); give the size");
        }
        Path backing = resolve(image, o.backingFile());
        try (BlockDevice device = Images.open(backing.toString(),
                OpenOptions.defaults().withFormat(format).withForceShare(true))) {
            return device.size();
        } catch (ImageException e) {
            throw new ImageException("Could not open backing image '" + o.backingFile() + "': " + e.getMessage(), e);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ImageException("Could not open backing image '" + o.backingFile() + "': No such file or directory");
        }
    }

    /** A name stored in the header, as readers resolve it: relative to the image's folder. */
    public static Path resolve(Path image, String name) {
        Path p = Path.of(name);
        if (p.isAbsolute()) {
            return p;
        }
        Path folder = image.toAbsolutePath().getParent();
        return folder == null ? p : folder.resolve(p);
    }

    /** An L2 table and the data clusters it maps: entries map host clusters from {@code firstHostCluster} on. */
    private record L2Placement(int l1Index, long l2Cluster, long firstHostCluster, int entries) {
    }

    /** Everything to write, decided before the first byte is. */
    private static final class Plan {
        long virtualSize;
        int clusterBits;
        long clusterSize;
        int refcountOrder;
        boolean extendedL2;
        boolean externalData;
        Preallocation preallocation;
        byte[] header;
        CreateAllocator allocator;
        long l1Offset;
        int l1Size;
        final List<L2Placement> l2s = new ArrayList<>();
        /** Zeroes QEMU's copy-on-write writes at the tail of the last data cluster (no subclusters). */
        long cowTailOffset = -1;
        long cowTailLength;
        /** The image file's data run for falloc/full: from the end of the file at that point. */
        long preallocFrom;
        long preallocTo;
        long imageLength;
        long dataFileLength;
        /** Where the data file is grown with the preallocation mode (falloc/full) or sparsely. */
        Preallocation dataFileGrowth = Preallocation.OFF;
    }

    private static Plan plan(Path image, CreateOptions o) throws IOException {
        Plan p = new Plan();
        p.virtualSize = validate(image, o);
        p.clusterSize = o.clusterSize();
        p.clusterBits = Long.numberOfTrailingZeros(p.clusterSize);
        p.refcountOrder = Integer.numberOfTrailingZeros(o.refcountBits());
        p.extendedL2 = o.extendedL2();
        p.externalData = o.dataFile() != null;
        // qcow2_co_create: a raw data file is only valid when every cluster is mapped.
        p.preallocation = o.dataFileRaw() && o.preallocation() == Preallocation.OFF ? Preallocation.METADATA
                : o.preallocation();

        long hostClusters = p.preallocation == Preallocation.OFF || p.externalData
                ? Math.ceilDiv(p.virtualSize, p.clusterSize * (p.clusterSize / (p.extendedL2 ? 16 : 8)))
                : Math.ceilDiv(p.virtualSize, p.clusterSize);
        // The layout keeps a bit per host cluster; refuse what would not fit rather than fail half-way.
        if (hostClusters / 8 > Runtime.getRuntime().maxMemory() / 2 || hostClusters > (1L << 37)) {
            throw new ImageException("preallocating " + hostClusters + " clusters of " + p.clusterSize
                    + " bytes is more than qimg can lay out; use a larger cluster size or less preallocation");
        }
        CreateAllocator alloc = new CreateAllocator(p.clusterBits, p.refcountOrder);
        p.allocator = alloc;
        long headerClusters = alloc.alloc(3);
        if (headerClusters != 0) {
            throw new IllegalStateException("header clusters allocated at cluster " + headerClusters);
        }
        long cs = p.clusterSize;
        long l2Entries = cs / (p.extendedL2 ? 16 : 8);
        long guestClusters = Math.ceilDiv(p.virtualSize, cs);
        p.l1Size = (int) Math.ceilDiv(guestClusters, l2Entries);
        if (p.l1Size > 0) {
            long l1Bytes = 8L * p.l1Size;
            p.l1Offset = alloc.alloc(Math.ceilDiv(l1Bytes, cs)) * cs;
            alloc.wrote(p.l1Offset, l1Bytes);
        }

        switch (p.preallocation) {
            case OFF -> p.dataFileLength = p.virtualSize;
            case METADATA -> preallocateMetadata(p, l2Entries, guestClusters);
            case FALLOC, FULL -> {
                if (p.externalData) {
                    preallocateMetadata(p, l2Entries, guestClusters);
                    p.dataFileGrowth = p.preallocation;
                } else {
                    preallocateData(p, l2Entries, guestClusters);
                }
            }
        }
        p.imageLength = alloc.fileEnd();

        long incompatible = (p.externalData ? Qcow2Header.INCOMPAT_DATA_FILE : 0)
                | ("zstd".equals(o.compressionType()) ? Qcow2Header.INCOMPAT_COMPRESSION : 0)
                | (p.extendedL2 ? Qcow2Header.INCOMPAT_EXTENDED_L2 : 0);
        p.header = HeaderEncoder.encode(new HeaderEncoder.Fields(o.version(), p.clusterBits, p.virtualSize, p.l1Size,
                p.l1Offset, alloc.reftableOffset(), alloc.reftableClusters(), incompatible,
                o.lazyRefcounts() ? Qcow2Header.COMPAT_LAZY_REFCOUNTS : 0,
                o.dataFileRaw() ? Qcow2Header.AUTOCLEAR_DATA_FILE_RAW : 0, p.refcountOrder,
                "zstd".equals(o.compressionType()) ? Qcow2Header.COMPRESSION_ZSTD : Qcow2Header.COMPRESSION_ZLIB,
                o.backingFile(), o.backingFormat(), o.dataFile()));
        return p;
    }

    /**
     * preallocate_co: for each L2 table in guest order, the table, then its data clusters in one run
     * (in the data file, at the guest offset, when there is one). Without subclusters QEMU's
     * copy-on-write then writes zeroes from the end of the disk to the end of its last cluster; the
     * file is grown sparsely to the end of the data.
     */
    private static void preallocateMetadata(Plan p, long l2Entries, long guestClusters) throws ImageException {
        CreateAllocator alloc = p.allocator;
        long cs = p.clusterSize;
        long end = 0;
        for (int i = 0; i < p.l1Size; i++) {
            long firstGuest = i * l2Entries;
            int entries = (int) Math.min(l2Entries, guestClusters - firstGuest);
            long l2 = alloc.alloc(1);
            alloc.wrote(l2 * cs, cs);
            long firstHost = p.externalData ? firstGuest : alloc.alloc(entries);
            p.l2s.add(new L2Placement(i, l2, firstHost, entries));
            end = firstHost * cs + (p.virtualSize - firstGuest * cs);
        }
        if (p.l1Size == 0) {
            p.dataFileLength = 0;
            return;
        }
        long tailEnd = (end + cs - 1) / cs * cs;
        if (!p.extendedL2 && tailEnd > end) {
            p.cowTailOffset = end;
            p.cowTailLength = tailEnd - end;
        }
        if (p.externalData) {
            p.dataFileLength = p.extendedL2 ? end : tailEnd;
        } else {
            alloc.wrote(end, p.extendedL2 ? 0 : tailEnd - end);
        }
    }

    /**
     * qcow2_co_truncate with falloc/full: a new refcount table sized for everything to come, one run
     * of data clusters after it (allocated or written by the file driver), then the L2 tables, the
     * first of them in the cluster the old refcount table freed.
     */
    private static void preallocateData(Plan p, long l2Entries, long guestClusters) throws ImageException {
        CreateAllocator alloc = p.allocator;
        long cs = p.clusterSize;
        long fileLength = alloc.fileEnd();
        long last = alloc.lastUsedCluster(fileLength);
        long oldFileClusters = last >= 0 ? last + 1 : Math.ceilDiv(fileLength, cs);
        long newL2Tables = Math.ceilDiv(guestClusters, l2Entries) + 1;
        long allocationStart = alloc.refcountArea(oldFileClusters, guestClusters + newL2Tables, true, 0, 0);
        long allocated = alloc.allocAt(allocationStart, guestClusters);
        if (allocated != guestClusters) {
            throw new IllegalStateException("only " + allocated + " of " + guestClusters + " data clusters were free");
        }
        long newFileSize = (allocationStart + guestClusters) * cs;
        p.preallocFrom = alloc.fileEnd();
        p.preallocTo = Math.max(p.preallocFrom, newFileSize);
        alloc.wrote(0, newFileSize);
        for (int i = 0; i < p.l1Size; i++) {
            long firstGuest = i * l2Entries;
            int entries = (int) Math.min(l2Entries, guestClusters - firstGuest);
            long l2 = alloc.alloc(1);
            alloc.wrote(l2 * cs, cs);
            p.l2s.add(new L2Placement(i, l2, allocationStart + firstGuest, entries));
        }
    }

    private static void write(Path image, Path dataPath, Plan p) throws IOException {
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
            file.setLength(0);
            var channel = file.getChannel();
            writeFully(channel, 0, ByteBuffer.wrap(p.header));
            CreateAllocator alloc = p.allocator;
            for (CreateAllocator.StaleTable stale : alloc.staleTables()) {
                writeFully(channel, stale.hostOffset(), tableBytes(stale.entries()));
            }
            long[] reftable = alloc.reftable();
            writeFully(channel, alloc.reftableOffset(), tableBytes(reftable));
            long blockEntries = (p.clusterSize * 8) >> p.refcountOrder;
            byte[] block = new byte[(int) p.clusterSize];
            MemorySegment blockView = MemorySegment.ofArray(block);
            for (int i = 0; i < reftable.length; i++) {
                if (reftable[i] == 0) {
                    continue;
                }
                java.util.Arrays.fill(block, (byte) 0);
                long first = i * blockEntries;
                for (int j = 0; j < blockEntries; j++) {
                    if (alloc.used(first + j)) {
                        RefcountBlock.set(blockView, j, p.refcountOrder, 1);
                    }
                }
                writeFully(channel, reftable[i], ByteBuffer.wrap(block));
            }
            if (p.l1Size > 0) {
                ByteBuffer l1 = ByteBuffer.allocate(8 * p.l1Size).order(ByteOrder.BIG_ENDIAN);
                for (L2Placement l2 : p.l2s) {
                    l1.putLong(8 * l2.l1Index(), (l2.l2Cluster() << p.clusterBits) | L2Entry.COPIED);
                }
                writeFully(channel, p.l1Offset, l1);
            }
            ByteBuffer table = ByteBuffer.allocate((int) p.clusterSize).order(ByteOrder.BIG_ENDIAN);
            int entryBytes = p.extendedL2 ? 16 : 8;
            for (L2Placement l2 : p.l2s) {
                table.clear();
                java.util.Arrays.fill(table.array(), (byte) 0);
                for (int j = 0; j < l2.entries(); j++) {
                    // Bitmaps of extended entries stay 0: QEMU preallocates without allocating subclusters.
                    table.putLong(j * entryBytes, ((l2.firstHostCluster() + j) << p.clusterBits) | L2Entry.COPIED);
                }
                writeFully(channel, l2.l2Cluster() << p.clusterBits, table);
            }
            if (p.cowTailOffset >= 0 && !p.externalData) {
                writeZeroes(channel, p.cowTailOffset, p.cowTailLength);
            }
            if (p.preallocTo > p.preallocFrom) {
                if (p.preallocation == Preallocation.FULL) {
                    writeZeroes(channel, p.preallocFrom, p.preallocTo - p.preallocFrom);
                } else {
                    channel.force(false);
                    Fallocate.allocate(image, p.preallocFrom, p.preallocTo - p.preallocFrom);
                }
            }
            if (file.length() < p.imageLength) {
                file.setLength(p.imageLength);
            }
            channel.force(false);
        }
        if (dataPath != null) {
            writeDataFile(dataPath, p);
        }
    }

    /** The external data file: created empty, then grown as QEMU's file driver grows it. */
    private static void writeDataFile(Path dataPath, Plan p) throws IOException {
        try (RandomAccessFile file = new RandomAccessFile(dataPath.toFile(), "rw")) {
            file.setLength(0);
            var channel = file.getChannel();
            if (p.cowTailOffset >= 0) {
                writeZeroes(channel, p.cowTailOffset, p.cowTailLength);
            }
            long length = file.length();
            long target = p.dataFileLength;
            if (target > length) {
                switch (p.dataFileGrowth) {
                    case FULL -> writeZeroes(channel, length, target - length);
                    case FALLOC -> Fallocate.allocate(dataPath, length, target - length);
                    default -> {
                        file.setLength(target);
                        if (length == 0) {
                            writeZeroes(channel, 0, Math.min(FIRST_BLOCK, target));
                        }
                    }
                }
            }
            channel.force(false);
        }
    }

    private static ByteBuffer tableBytes(long[] entries) {
        ByteBuffer b = ByteBuffer.allocate(entries.length * 8).order(ByteOrder.BIG_ENDIAN);
        b.asLongBuffer().put(entries); // one bulk copy: thousands of entries, not thousands of calls
        return b;
    }

    private static void writeFully(java.nio.channels.FileChannel channel, long hostOffset, ByteBuffer src)
            throws IOException {
        ByteBuffer b = src.duplicate();
        b.rewind();
        long at = hostOffset;
        while (b.hasRemaining()) {
            at += channel.write(b, at);
        }
    }

    private static void writeZeroes(java.nio.channels.FileChannel channel, long hostOffset, long length)
            throws IOException {
        ByteBuffer zeroes = ByteBuffer.allocate((int) Math.min(ZERO_CHUNK, Math.max(1, length)));
        long at = hostOffset;
        long end = hostOffset + length;
        while (at < end) {
            zeroes.clear().limit((int) Math.min(zeroes.capacity(), end - at));
            while (zeroes.hasRemaining()) {
                at += channel.write(zeroes, at);
            }
        }
    }
}
