package org.qimg.format;

import org.qimg.ImageException;

/**
 * Decoding of L1 and L2 entries (qcow2.txt, "Cluster mapping"): classification into a
 * {@link SubclusterType}, host offsets, and the compressed-cluster descriptor. Pure code, no I/O.
 */
public final class L2Entry {
    public static final long COPIED = 1L << 63;
    public static final long COMPRESSED_FLAG = 1L << 62;
    public static final long ZERO_FLAG = 1L;
    /** Bits 9..55: the host cluster offset of a standard entry, and of an L1 entry's L2 table. */
    public static final long OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00L;
    public static final int SUBCLUSTERS = 32;

    private L2Entry() {
    }

    /** The L2 table offset of an L1 entry (0 when the range is unallocated). */
    public static long l2TableOffset(long l1Entry) {
        return l1Entry & OFFSET_MASK;
    }

    /** The host cluster offset of a standard (not compressed) L2 entry. */
    public static long hostClusterOffset(long entry) {
        return entry & OFFSET_MASK;
    }

    /**
     * The type of a cluster with a standard (64-bit) L2 entry (QEMU's qcow2_get_cluster_type).
     *
     * @param externalData the image keeps its data in an external file, where offset 0 is valid
     */
    public static SubclusterType classify(long entry, boolean externalData) {
        if ((entry & COMPRESSED_FLAG) != 0) {
            return SubclusterType.COMPRESSED;
        }
        long offset = entry & OFFSET_MASK;
        if ((entry & ZERO_FLAG) != 0) {
            return offset != 0 ? SubclusterType.ZERO_ALLOC : SubclusterType.ZERO_PLAIN;
        }
        if (offset == 0 && !(externalData && (entry & COPIED) != 0)) {
            return SubclusterType.UNALLOCATED_PLAIN;
        }
        return SubclusterType.NORMAL;
    }

    /**
     * The type of subcluster {@code index} of an extended L2 entry (QEMU's qcow2_get_subcluster_type).
     *
     * @throws ImageException.Corrupt when the bitmap contradicts itself or the entry
     */
    public static SubclusterType classifyExtended(long entry, long bitmap, int index, boolean externalData)
            throws ImageException {
        if ((entry & COMPRESSED_FLAG) != 0) {
            return SubclusterType.COMPRESSED;
        }
        int alloc = (int) bitmap;
        int zero = (int) (bitmap >>> 32);
        long offset = entry & OFFSET_MASK;
        boolean hasCluster = offset != 0 || (externalData && (entry & COPIED) != 0);
        if (hasCluster) {
            if ((alloc & zero) != 0) {
                throw new ImageException.Corrupt("subcluster bitmap 0x" + Long.toHexString(bitmap)
                        + " marks subclusters both allocated and zero");
            }
            if ((zero >>> index & 1) != 0) {
                return SubclusterType.ZERO_ALLOC;
            }
            return (alloc >>> index & 1) != 0 ? SubclusterType.NORMAL : SubclusterType.UNALLOCATED_ALLOC;
        }
        if (alloc != 0) {
            throw new ImageException.Corrupt("subcluster bitmap 0x" + Long.toHexString(bitmap)
                    + " allocates subclusters of an entry with no host cluster");
        }
        return (zero >>> index & 1) != 0 ? SubclusterType.ZERO_PLAIN : SubclusterType.UNALLOCATED_PLAIN;
    }

    /**
     * The number of subclusters from {@code index} (inclusive) that share the type of subcluster
     * {@code index}, up to the end of the cluster. Needs a bitmap already validated by
     * {@link #classifyExtended}.
     */
    public static int sameTypeRun(long bitmap, int index) {
        int alloc = (int) bitmap;
        int zero = (int) (bitmap >>> 32);
        // Two bits per subcluster decide its type within one entry: (zero, alloc).
        int zeroBit = zero >>> index & 1;
        int allocBit = alloc >>> index & 1;
        int differs = (zeroBit != 0 ? ~zero : zero) | (allocBit != 0 ? ~alloc : alloc);
        differs >>>= index;
        if (index > 0) {
            differs &= (int) ((1L << (SUBCLUSTERS - index)) - 1);
        }
        int run = differs == 0 ? SUBCLUSTERS - index : Integer.numberOfTrailingZeros(differs);
        return Math.min(run, SUBCLUSTERS - index);
    }

    /** Bit position where the sector count of a compressed descriptor starts: 70 - cluster_bits. */
    public static int compressedOffsetBits(int clusterBits) {
        return 70 - clusterBits;
    }

    /** The host byte offset of a compressed cluster's data. */
    public static long compressedHostOffset(long entry, int clusterBits) {
        int x = compressedOffsetBits(clusterBits);
        return entry & ((1L << x) - 1);
    }

    /** How many bytes to read for a compressed cluster: (additional sectors + 1) * 512 - offset % 512. */
    public static int compressedLength(long entry, int clusterBits) {
        int x = compressedOffsetBits(clusterBits);
        long sectors = ((entry & ~(COPIED | COMPRESSED_FLAG)) >>> x) + 1;
        long hostOffset = compressedHostOffset(entry, clusterBits);
        return (int) (sectors * 512 - (hostOffset & 511));
    }
}
