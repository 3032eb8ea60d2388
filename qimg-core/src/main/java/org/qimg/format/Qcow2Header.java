package org.qimg.format;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.qimg.ImageException;

/**
 * The qcow2 header (qcow2.txt, "Header") with its extensions, decoded and validated. Pure code: it
 * takes the first bytes of the file and the file's size, and does no I/O.
 */
public record Qcow2Header(
        int version,
        long backingFileOffset,
        int backingFileSize,
        int clusterBits,
        long virtualSize,
        int cryptMethod,
        int l1Size,
        long l1TableOffset,
        long refcountTableOffset,
        int refcountTableClusters,
        int nbSnapshots,
        long snapshotsOffset,
        long incompatibleFeatures,
        long compatibleFeatures,
        long autoclearFeatures,
        int refcountOrder,
        int headerLength,
        int compressionType,
        String backingFile,
        String backingFormat,
        String dataFile,
        List<FeatureName> featureNames,
        int bitmapCount,
        long bitmapDirectoryOffset,
        long bitmapDirectorySize,
        List<Long> unknownExtensions) {

    public static final int MAGIC = 0x514649FB;
    public static final int V2_HEADER_LENGTH = 72;
    public static final int V3_MIN_HEADER_LENGTH = 104;
    public static final int MIN_CLUSTER_BITS = 9;
    public static final int MAX_CLUSTER_BITS = 21;
    /** QEMU's limits: the L1 table at most 32 MiB, the refcount table at most 8 MiB. */
    public static final long MAX_L1_BYTES = 32L << 20;
    public static final long MAX_REFCOUNT_TABLE_BYTES = 8L << 20;
    public static final int MAX_BACKING_NAME = 1023;

    public static final long INCOMPAT_DIRTY = 1L;
    public static final long INCOMPAT_CORRUPT = 1L << 1;
    public static final long INCOMPAT_DATA_FILE = 1L << 2;
    public static final long INCOMPAT_COMPRESSION = 1L << 3;
    public static final long INCOMPAT_EXTENDED_L2 = 1L << 4;
    public static final long INCOMPAT_KNOWN = 0x1F;
    public static final long COMPAT_LAZY_REFCOUNTS = 1L;
    public static final long AUTOCLEAR_BITMAPS = 1L;
    public static final long AUTOCLEAR_DATA_FILE_RAW = 1L << 1;

    public static final int COMPRESSION_ZLIB = 0;
    public static final int COMPRESSION_ZSTD = 1;

    static final int EXT_END = 0;
    static final int EXT_BACKING_FORMAT = 0xE2792ACA;
    static final int EXT_FEATURE_NAMES = 0x6803F857;
    public static final int EXT_BITMAPS = 0x23852875;
    static final int EXT_CRYPTO = 0x0537BE77;
    static final int EXT_DATA_FILE = 0x44415441;

    /** An entry of the feature-name table extension. */
    public record FeatureName(int type, int bit, String name) {
    }

    /** Whether {@code first} starts with the qcow2 magic. */
    public static boolean hasMagic(ByteBuffer first) {
        return first.remaining() >= 4 && first.getInt(first.position()) == MAGIC;
    }

    /**
     * Decodes the header from {@code cluster}, the file's first bytes (at least one cluster when the
     * file is that large, big-endian), and validates it against {@code fileSize}.
     */
    public static Qcow2Header parse(ByteBuffer cluster, long fileSize, String file) throws ImageException {
        ByteBuffer b = cluster.duplicate().order(java.nio.ByteOrder.BIG_ENDIAN);
        if (b.remaining() < V2_HEADER_LENGTH) {
            throw corrupt(file, "file is too short for a qcow2 header (" + b.remaining() + " bytes, need 72)");
        }
        int magic = b.getInt(0);
        if (magic != MAGIC) {
            throw new ImageException(file + ": not a qcow2 image (magic 0x" + Integer.toHexString(magic) + ")");
        }
        int version = b.getInt(4);
        if (version != 2 && version != 3) {
            throw new ImageException.Unsupported(file + ": unsupported qcow2 version " + Integer.toUnsignedString(version));
        }
        long backingFileOffset = b.getLong(8);
        int backingFileSize = b.getInt(16);
        int clusterBits = b.getInt(20);
        long virtualSize = b.getLong(24);
        int cryptMethod = b.getInt(32);
        int l1Size = b.getInt(36);
        long l1TableOffset = b.getLong(40);
        long refcountTableOffset = b.getLong(48);
        int refcountTableClusters = b.getInt(56);
        int nbSnapshots = b.getInt(60);
        long snapshotsOffset = b.getLong(64);

        long incompatible = 0;
        long compatible = 0;
        long autoclear = 0;
        int refcountOrder = 4;
        int headerLength = V2_HEADER_LENGTH;
        int compressionType = COMPRESSION_ZLIB;
        if (version == 3) {
            if (b.remaining() < V3_MIN_HEADER_LENGTH) {
                throw corrupt(file, "file is too short for a qcow2 v3 header (" + b.remaining() + " bytes, need 104)");
            }
            incompatible = b.getLong(72);
            compatible = b.getLong(80);
            autoclear = b.getLong(88);
            refcountOrder = b.getInt(96);
            headerLength = b.getInt(100);
            if (headerLength < V3_MIN_HEADER_LENGTH || headerLength % 8 != 0) {
                throw corrupt(file, "header_length " + Integer.toUnsignedString(headerLength)
                        + " is not a multiple of 8 of at least 104");
            }
        }

        if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
            throw corrupt(file, "cluster_bits " + Integer.toUnsignedString(clusterBits) + " out of range 9..21");
        }
        long clusterSize = 1L << clusterBits;
        if (Integer.toUnsignedLong(headerLength) > clusterSize) {
            throw corrupt(file, "header_length " + headerLength + " exceeds the cluster size " + clusterSize);
        }
        if (b.remaining() < headerLength) {
            throw corrupt(file, "file is too short for its header_length " + headerLength);
        }
        if (version == 3 && headerLength > 104) {
            compressionType = b.get(104) & 0xFF;
        }
        if (refcountOrder < 0 || refcountOrder > 6) {
            throw corrupt(file, "refcount_order " + Integer.toUnsignedString(refcountOrder) + " out of range 0..6");
        }
        long unknownIncompat = incompatible & ~INCOMPAT_KNOWN;
        if (unknownIncompat != 0) {
            throw new ImageException.Unsupported(file + ": unsupported incompatible feature bits 0x"
                    + Long.toHexString(unknownIncompat));
        }
        if ((incompatible & INCOMPAT_COMPRESSION) != 0) {
            if (compressionType == COMPRESSION_ZLIB) {
                throw corrupt(file, "compression type bit is set but compression_type is zlib (0)");
            }
        } else if (compressionType != COMPRESSION_ZLIB) {
            throw corrupt(file, "compression_type " + compressionType + " without the compression type feature bit");
        }
        if (compressionType != COMPRESSION_ZLIB && compressionType != COMPRESSION_ZSTD) {
            throw new ImageException.Unsupported(file + ": unknown compression_type " + compressionType);
        }
        boolean extendedL2 = (incompatible & INCOMPAT_EXTENDED_L2) != 0;
        if (extendedL2 && clusterBits < 14) {
            throw corrupt(file, "extended L2 entries need clusters of at least 16 KiB (cluster_bits " + clusterBits + ")");
        }
        if (virtualSize < 0) {
            throw corrupt(file, "virtual size 0x" + Long.toHexString(virtualSize) + " is negative");
        }
        // L1: enough entries to map the virtual size, aligned, bounded, inside the file.
        int l2Bits = clusterBits - (extendedL2 ? 4 : 3);
        long bytesPerL1Entry = 1L << (clusterBits + l2Bits);
        long neededL1 = virtualSize == 0 ? 0 : (virtualSize - 1) / bytesPerL1Entry + 1;
        long l1Entries = Integer.toUnsignedLong(l1Size);
        if (l1Entries * 8 > MAX_L1_BYTES) {
            throw corrupt(file, "l1_size " + l1Entries + " exceeds the 32 MiB limit of the L1 table");
        }
        if (l1Entries < neededL1) {
            throw corrupt(file, "l1_size " + l1Entries + " is too small for the virtual size " + virtualSize
                    + " (needs " + neededL1 + ")");
        }
        checkTable(file, "L1 table", l1TableOffset, l1Entries * 8, clusterSize, fileSize);
        long refcountBytes = Integer.toUnsignedLong(refcountTableClusters) * clusterSize;
        if (refcountBytes > MAX_REFCOUNT_TABLE_BYTES) {
            throw corrupt(file, "refcount_table_clusters " + Integer.toUnsignedString(refcountTableClusters)
                    + " exceeds the 8 MiB limit of the refcount table");
        }
        checkTable(file, "refcount table", refcountTableOffset, refcountBytes, clusterSize, fileSize);
        if (nbSnapshots != 0) {
            if (nbSnapshots < 0 || nbSnapshots > 65536) {
                throw corrupt(file, "nb_snapshots " + Integer.toUnsignedString(nbSnapshots) + " out of range");
            }
            checkTable(file, "snapshot table", snapshotsOffset, 40L, clusterSize, fileSize);
        }

        String backingFile = null;
        if (backingFileOffset != 0) {
            if (Integer.toUnsignedLong(backingFileSize) > MAX_BACKING_NAME) {
                throw corrupt(file, "backing_file_size " + Integer.toUnsignedString(backingFileSize)
                        + " exceeds " + MAX_BACKING_NAME);
            }
            if (backingFileOffset < 0 || backingFileOffset + backingFileSize > Math.min(clusterSize, b.remaining())) {
                throw corrupt(file, "backing file name at 0x" + Long.toHexString(backingFileOffset)
                        + " (length " + backingFileSize + ") lies outside the first cluster");
            }
            byte[] name = new byte[backingFileSize];
            b.get((int) backingFileOffset, name);
            backingFile = new String(name, StandardCharsets.UTF_8);
        }

        // Header extensions: from the end of the header to the end of the first cluster.
        String backingFormat = null;
        String dataFile = null;
        int bitmapCount = 0;
        long bitmapDirectoryOffset = 0;
        long bitmapDirectorySize = 0;
        boolean sawCrypto = false;
        List<FeatureName> featureNames = new ArrayList<>();
        List<Long> unknown = new ArrayList<>();
        long limit = Math.min(clusterSize, b.remaining());
        if (backingFileOffset != 0 && backingFileOffset > headerLength) {
            limit = Math.min(limit, backingFileOffset);
        }
        long at = headerLength;
        while (true) {
            if (at + 8 > limit) {
                if (at == limit && at >= V2_HEADER_LENGTH && version == 2) {
                    break; // a v2 header may end without an end marker
                }
                throw corrupt(file, "header extension at 0x" + Long.toHexString(at) + " runs past the first cluster");
            }
            int type = b.getInt((int) at);
            long length = Integer.toUnsignedLong(b.getInt((int) at + 4));
            if (type == EXT_END) {
                break;
            }
            long dataAt = at + 8;
            if (dataAt + length > limit) {
                throw corrupt(file, "header extension 0x" + Integer.toHexString(type) + " at 0x" + Long.toHexString(at)
                        + " (length " + length + ") runs past the first cluster");
            }
            switch (type) {
                case EXT_BACKING_FORMAT -> backingFormat = string(b, dataAt, length);
                case EXT_DATA_FILE -> dataFile = string(b, dataAt, length);
                case EXT_FEATURE_NAMES -> {
                    for (long e = dataAt; e + 48 <= dataAt + length; e += 48) {
                        byte[] raw = new byte[46];
                        b.get((int) e + 2, raw);
                        int n = 0;
                        while (n < raw.length && raw[n] != 0) {
                            n++;
                        }
                        featureNames.add(new FeatureName(b.get((int) e) & 0xFF, b.get((int) e + 1) & 0xFF,
                                new String(raw, 0, n, StandardCharsets.UTF_8)));
                    }
                }
                case EXT_BITMAPS -> {
                    if (length < 24) {
                        throw corrupt(file, "bitmaps extension is " + length + " bytes, need 24");
                    }
                    bitmapCount = b.getInt((int) dataAt);
                    bitmapDirectorySize = b.getLong((int) dataAt + 8);
                    bitmapDirectoryOffset = b.getLong((int) dataAt + 16);
                }
                case EXT_CRYPTO -> sawCrypto = true;
                default -> unknown.add(Integer.toUnsignedLong(type));
            }
            at = dataAt + ((length + 7) & ~7L);
        }
        if (cryptMethod != 0 || sawCrypto) {
            throw new ImageException.Unsupported(file + ": encrypted images are not supported (crypt_method "
                    + Integer.toUnsignedString(cryptMethod) + (cryptMethod == 1 ? ", AES" : cryptMethod == 2 ? ", LUKS" : "")
                    + ")");
        }
        if ((incompatible & INCOMPAT_DATA_FILE) != 0 && dataFile == null) {
            throw corrupt(file, "the external data file bit is set but no data file name is recorded");
        }
        return new Qcow2Header(version, backingFileOffset, backingFileSize, clusterBits, virtualSize, cryptMethod,
                l1Size, l1TableOffset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset,
                incompatible, compatible, autoclear, refcountOrder, headerLength, compressionType, backingFile,
                backingFormat, dataFile, List.copyOf(featureNames), bitmapCount, bitmapDirectoryOffset,
                bitmapDirectorySize, List.copyOf(unknown));
    }

    private static void checkTable(String file, String what, long offset, long length, long clusterSize,
                                   long fileSize) throws ImageException {
        if (length == 0) {
            return;
        }
        if (offset <= 0 || (offset & (clusterSize - 1)) != 0) {
            throw corrupt(file, what + " offset 0x" + Long.toHexString(offset) + " is not a non-zero multiple of the cluster size");
        }
        if (offset > fileSize || length > fileSize - offset) {
            throw corrupt(file, what + " at 0x" + Long.toHexString(offset) + " (0x" + Long.toHexString(length)
                    + " bytes) runs past the end of the file (size 0x" + Long.toHexString(fileSize) + ")");
        }
    }

    private static String string(ByteBuffer b, long at, long length) {
        byte[] raw = new byte[(int) length];
        b.get((int) at, raw);
        return new String(raw, StandardCharsets.UTF_8);
    }

    static ImageException corrupt(String file, String message) {
        return new ImageException.Corrupt(file + ": " + message);
    }

    public long clusterSize() {
        return 1L << clusterBits;
    }

    public boolean extendedL2() {
        return (incompatibleFeatures & INCOMPAT_EXTENDED_L2) != 0;
    }

    public boolean hasDataFile() {
        return (incompatibleFeatures & INCOMPAT_DATA_FILE) != 0;
    }

    public boolean dataFileRaw() {
        return (autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) != 0;
    }

    public boolean dirty() {
        return (incompatibleFeatures & INCOMPAT_DIRTY) != 0;
    }

    public boolean corrupt() {
        return (incompatibleFeatures & INCOMPAT_CORRUPT) != 0;
    }

    public boolean lazyRefcounts() {
        return (compatibleFeatures & COMPAT_LAZY_REFCOUNTS) != 0;
    }

    public int refcountBits() {
        return 1 << refcountOrder;
    }

    /** log2 of the number of entries in an L2 table. */
    public int l2Bits() {
        return clusterBits - (extendedL2() ? 4 : 3);
    }

    public int l2EntryBytes() {
        return extendedL2() ? 16 : 8;
    }
}
