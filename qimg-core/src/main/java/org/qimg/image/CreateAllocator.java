package org.qimg.image;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.qimg.ImageException;
import org.qimg.format.Qcow2Header;

/**
 * Replays QEMU 7.2's host-cluster allocator (block/qcow2-refcount.c) on an image being created, so
 * that qimg places every cluster where qemu-img places it: a next-fit search from a free-cluster
 * index, refcount blocks allocated on demand right after the range that needed them (describing
 * themselves when they can), a retry from the start of the range after each new block, and a new,
 * larger refcount table with fresh blocks when the old table is full. During creation every
 * refcount is 0 or 1, so a bit per cluster holds them. No I/O: it only records what goes where.
 */
final class CreateAllocator {
    /** Host offsets in L1 and L2 entries must stay below 2^56 (qcow2.txt, "Cluster mapping"). */
    private static final long MAX_HOST_OFFSET = 1L << 56;
    private final int clusterBits;
    private final long clusterSize;
    /** log2 of the entries of a refcount block. */
    private final int refblockBits;
    private final long refblockEntries;

    private long[] reftable;
    private long reftableCluster;
    private int reftableClusters;
    private final ClusterBits used = new ClusterBits();
    private long freeClusterIndex;
    /** The end of everything written so far: QEMU's bdrv_getlength(bs->file) at each step. */
    private long fileEnd;
    /** Refcount tables replaced by larger ones, with the content they had, in the order they were written. */
    private final List<StaleTable> staleTables = new ArrayList<>();

    /** A refcount table that was written and later replaced; its clusters keep its bytes unless reused. */
    record StaleTable(long hostOffset, long[] entries) {
    }

    /**
     * The state qcow2_co_create leaves before opening the image: the header in cluster 0, a one-cluster
     * refcount table in cluster 1 whose only entry points at an empty refcount block in cluster 2.
     */
    CreateAllocator(int clusterBits, int refcountOrder) {
        this.clusterBits = clusterBits;
        this.clusterSize = 1L << clusterBits;
        this.refblockBits = clusterBits + 3 - refcountOrder;
        this.refblockEntries = 1L << refblockBits;
        this.reftable = new long[(int) (clusterSize / 8)];
        this.reftable[0] = 2 * clusterSize;
        this.reftableCluster = 1;
        this.reftableClusters = 1;
        this.fileEnd = 3 * clusterSize;
    }

    long clusterSize() {
        return clusterSize;
    }

    long fileEnd() {
        return fileEnd;
    }

    /** Records a write of {@code length} bytes at {@code hostOffset} (the file grows to cover it). */
    void wrote(long hostOffset, long length) {
        fileEnd = Math.max(fileEnd, hostOffset + length);
    }

    long[] reftable() {
        return reftable;
    }

    long reftableOffset() {
        return reftableCluster << clusterBits;
    }

    int reftableClusters() {
        return reftableClusters;
    }

    List<StaleTable> staleTables() {
        return staleTables;
    }

    /** Whether host cluster {@code clusterIndex} has refcount 1. */
    boolean used(long clusterIndex) {
        return refcount(clusterIndex) != 0;
    }

    /** qcow2_get_refcount: 0 where no refcount block covers the cluster. */
    private int refcount(long clusterIndex) {
        long tableIndex = clusterIndex >>> refblockBits;
        if (tableIndex >= reftable.length || reftable[(int) tableIndex] == 0) {
            return 0;
        }
        return used.get(clusterIndex) ? 1 : 0;
    }

    /** qcow2_alloc_clusters: {@code count} contiguous clusters, returns the first cluster index. */
    long alloc(long count) throws ImageException {
        long start;
        do {
            start = allocNoref(count);
        } while (update(start, count, false));
        return start;
    }

    /** qcow2_alloc_clusters_at: as many of {@code count} clusters from {@code start} as are free. */
    long allocAt(long start, long count) throws ImageException {
        long free;
        do {
            free = 0;
            while (free < count && refcount(start + free) == 0) {
                free++;
            }
        } while (update(start, free, false));
        return free;
    }

    /** qcow2_free_clusters. */
    void free(long start, long count) throws ImageException {
        update(start, count, true);
    }

    /** qcow2_get_last_cluster: the last cluster below {@code fileSize} with a refcount, or -1. */
    long lastUsedCluster(long fileSize) {
        for (long i = (fileSize + clusterSize - 1) / clusterSize - 1; i >= 0; i--) {
            if (refcount(i) != 0) {
                return i;
            }
        }
        return -1;
    }

    /** alloc_clusters_noref: next fit from the free-cluster index. */
    private long allocNoref(long count) throws ImageException {
        long found = 0;
        while (found < count) {
            long next = freeClusterIndex++;
            if (refcount(next) != 0) {
                found = 0;
            } else {
                found++;
            }
        }
        if (freeClusterIndex > MAX_HOST_OFFSET >>> clusterBits) {
            throw new ImageException("the image needs host offsets beyond the 64 PiB qcow2 can address");
        }
        return freeClusterIndex - count;
    }

    /**
     * update_refcount by one over {@code count} clusters. Returns true for QEMU's -EAGAIN: a refcount
     * block had to be allocated, the partial update is undone and the caller must search again.
     */
    private boolean update(long start, long count, boolean decrease) throws ImageException {
        long oldTableIndex = -1;
        for (long cluster = start; cluster < start + count; cluster++) {
            long tableIndex = cluster >>> refblockBits;
            if (tableIndex != oldTableIndex && allocRefcountBlock(cluster)) {
                // "Try the same ones first to see if they're still free", then undo what was done.
                freeClusterIndex = Math.min(freeClusterIndex, start);
                update(start, cluster - start, !decrease);
                return true;
            }
            oldTableIndex = tableIndex;
            if (decrease) {
                used.clear(cluster);
                freeClusterIndex = Math.min(freeClusterIndex, cluster);
            } else {
                used.set(cluster);
            }
        }
        return false;
    }

    /** alloc_refcount_block: false when the block covering {@code clusterIndex} exists (no -EAGAIN). */
    private boolean allocRefcountBlock(long clusterIndex) throws ImageException {
        long tableIndex = clusterIndex >>> refblockBits;
        if (tableIndex < reftable.length && reftable[(int) tableIndex] != 0) {
            return false;
        }
        long newBlock = allocNoref(1);
        if ((newBlock >>> refblockBits) == tableIndex) {
            used.set(newBlock); // the new block describes itself
        } else if (update(newBlock, 1, false)) {
            return true;
        }
        wrote(newBlock << clusterBits, clusterSize);
        if (tableIndex < reftable.length) {
            reftable[(int) tableIndex] = newBlock << clusterBits;
            return true;
        }
        // The table is full: new blocks and a larger table go past everything the blocks so far cover.
        long blocksUsed = Math.ceilDiv(Math.max(clusterIndex + 1, newBlock + 1), refblockEntries);
        refcountArea(blocksUsed * refblockEntries, 0, false, (int) tableIndex, newBlock << clusterBits);
        return true;
    }

    /**
     * qcow2_refcount_area: a new refcount table (and the refcount blocks missing so far) at cluster
     * {@code startCluster}, covering {@code additionalClusters} more clusters; the old table is freed.
     * Returns the first cluster after the new structures.
     */
    long refcountArea(long startCluster, long additionalClusters, boolean exactSize, int newRefblockIndex,
                      long newRefblockOffset) throws ImageException {
        long totalRefblocks = refcountBlocksFor(startCluster + additionalClusters, !exactSize);
        long entriesPerTableCluster = clusterSize / 8;
        if (totalRefblocks * 8 > Qcow2Header.MAX_REFCOUNT_TABLE_BYTES) {
            throw new ImageException("the image needs a refcount table larger than the 8 MiB qcow2 allows");
        }
        long areaIndex = startCluster / refblockEntries;
        // A growing table gets half again as many entries, so that it is not grown for every new block.
        long tableSize = exactSize ? totalRefblocks : totalRefblocks + Math.ceilDiv(totalRefblocks, 2);
        tableSize = Math.ceilDiv(tableSize, entriesPerTableCluster) * entriesPerTableCluster;
        if (tableSize * 8 > Qcow2Header.MAX_REFCOUNT_TABLE_BYTES) {
            throw new ImageException("the image needs a refcount table larger than the 8 MiB qcow2 allows");
        }
        int tableClusters = (int) (tableSize / entriesPerTableCluster);
        long[] newTable = Arrays.copyOf(reftable, (int) tableSize);
        if (tableSize < reftable.length) {
            for (int i = (int) tableSize; i < reftable.length; i++) {
                if (reftable[i] != 0) {
                    throw new IllegalStateException("refcount table would shrink over block " + i);
                }
            }
        }
        if (newRefblockOffset != 0) {
            newTable[newRefblockIndex] = newRefblockOffset;
        }
        long additionalRefblocks = 0;
        for (long i = areaIndex; i < totalRefblocks; i++) {
            if (newTable[(int) i] == 0) {
                additionalRefblocks++;
            }
        }
        long tableCluster = startCluster + additionalRefblocks;
        long endCluster = tableCluster + tableClusters;
        long blockCluster = startCluster;
        for (long i = areaIndex; i < totalRefblocks; i++) {
            if (newTable[(int) i] == 0) {
                newTable[(int) i] = blockCluster << clusterBits;
                wrote(blockCluster << clusterBits, clusterSize);
                blockCluster++;
            }
            long firstCovered = i * refblockEntries;
            if (firstCovered < endCluster) {
                long j = firstCovered < startCluster ? startCluster - firstCovered : 0;
                long end = Math.min(endCluster - firstCovered, refblockEntries);
                for (; j < end; j++) {
                    used.set(firstCovered + j);
                }
            }
        }
        staleTables.add(new StaleTable(reftableCluster << clusterBits, reftable.clone()));
        long oldTableCluster = reftableCluster;
        int oldTableClusters = reftableClusters;
        reftable = newTable;
        reftableCluster = tableCluster;
        reftableClusters = tableClusters;
        wrote(tableCluster << clusterBits, (long) tableClusters << clusterBits);
        free(oldTableCluster, oldTableClusters);
        return endCluster;
    }

    /**
     * qcow2_refcount_metadata_size: how many refcount blocks cover {@code clusters} clusters plus the
     * blocks and table themselves (the fixed point), with a generous margin when asked.
     */
    private long refcountBlocksFor(long clusters, boolean generousIncrease) {
        long blocksPerTableCluster = clusterSize / 8;
        long table = 0;
        long blocks = 0;
        long n = 0;
        long last;
        do {
            last = n;
            blocks = Math.ceilDiv(clusters + table + blocks, refblockEntries);
            table = Math.ceilDiv(blocks, blocksPerTableCluster);
            n = clusters + blocks + table;
            if (n == last && generousIncrease) {
                clusters += Math.ceilDiv(table, 2);
                n = 0;
                generousIncrease = false;
            }
        } while (n != last);
        return blocks;
    }

    /** One bit per host cluster, addressed by a long index, growing as needed. */
    private static final class ClusterBits {
        private long[] words = new long[64];

        boolean get(long index) {
            int word = (int) (index >>> 6);
            return word < words.length && (words[word] & (1L << index)) != 0;
        }

        void set(long index) {
            long word = index >>> 6;
            if (word >= words.length) {
                if (word >= Integer.MAX_VALUE - 8) {
                    throw new IllegalStateException("cluster index " + index + " is too large to lay out");
                }
                words = Arrays.copyOf(words, (int) Math.min(Integer.MAX_VALUE - 8, Math.max(word + 1, 2L * words.length)));
            }
            words[(int) word] |= 1L << index;
        }

        void clear(long index) {
            int word = (int) (index >>> 6);
            if (word < words.length) {
                words[word] &= ~(1L << index);
            }
        }
    }
}
