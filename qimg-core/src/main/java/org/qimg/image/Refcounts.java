package org.qimg.image;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.Map;

import org.qimg.ImageException;
import org.qimg.cache.TableCache;
import org.qimg.format.Qcow2Header;
import org.qimg.format.RefcountBlock;
import org.qimg.host.HostFile;

/**
 * The refcount structures of one qcow2 file (qcow2.txt, "Host cluster management"): the refcount
 * table in memory and a bounded cache of refcount blocks. Read-only images read the blocks from the
 * mapping; writable ones keep changed blocks and table entries dirty until {@link #writeBlocks} and
 * {@link #writeTable} (the writer decides when, so that refcounts reach the disk before the
 * references they count). Not thread-safe: the device's lock guards it.
 */
final class Refcounts {
    private static final int MAX_DIRTY_BLOCKS = 4096;

    private final HostFile file;
    private final String name;
    private final int clusterBits;
    private final long clusterSize;
    private final int order;
    private final long blockEntries;
    private final boolean writable;
    private long[] table;
    private long tableOffset;
    private int tableClusters;
    private final BitSet dirtyTable = new BitSet();
    private final Map<Long, MemorySegment> dirtyBlocks = new LinkedHashMap<>();
    private final TableCache<MemorySegment> blocks;

    Refcounts(HostFile file, Qcow2Header header, boolean writable) throws IOException {
        this.file = file;
        this.name = file.name();
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.order = header.refcountOrder();
        this.blockEntries = clusterSize * 8 >> order;
        this.writable = writable;
        this.tableOffset = header.refcountTableOffset();
        this.tableClusters = header.refcountTableClusters();
        int entries = (int) ((long) tableClusters * clusterSize / 8);
        this.table = new long[entries];
        if (entries > 0) {
            // One bulk copy (byte-swapped as it goes), not an access per entry: a 64 KiB table has
            // 8,192 entries, ~3 ms one by one before compilation.
            MemorySegment.copy(file.slice(tableOffset, 8L * entries), Qcow2Layer.BE_LONG, 0, table, 0, entries);
        }
        this.blocks = new TableCache<>(64, this::loadBlock);
    }

    private MemorySegment loadBlock(long blockOffset) throws IOException {
        MemorySegment dirty = dirtyBlocks.get(blockOffset);
        if (dirty != null) {
            return dirty;
        }
        if ((blockOffset & (clusterSize - 1)) != 0 || blockOffset + clusterSize > file.size()) {
            throw new ImageException.Corrupt(name + ": refcount block at 0x" + Long.toHexString(blockOffset)
                    + " is unaligned or past the end of the file (size 0x" + Long.toHexString(file.size()) + ")");
        }
        if (!writable) {
            return file.slice(blockOffset, clusterSize);
        }
        ByteBuffer copy = ByteBuffer.allocate((int) clusterSize);
        file.read(blockOffset, copy);
        return MemorySegment.ofArray(copy.array());
    }

    long clusterSize() {
        return clusterSize;
    }

    /** The largest refcount the width can hold. */
    long max() {
        return order == 6 ? Long.MAX_VALUE : (1L << (1 << order)) - 1;
    }

    /** The refcount of host cluster {@code clusterIndex}; 0 past the table or in a missing block. */
    long get(long clusterIndex) throws IOException {
        long tableIndex = clusterIndex / blockEntries;
        if (tableIndex >= table.length) {
            return 0;
        }
        long blockOffset = table[(int) tableIndex] & ~0x1FFL;
        if (blockOffset == 0) {
            return 0;
        }
        return RefcountBlock.get(blocks.get(blockOffset), (int) (clusterIndex % blockEntries), order);
    }

    /**
     * How many host clusters in [{@code from}, {@code to}) have a refcount above zero, counted a block
     * at a time; the count may stop early once it reaches {@code enough}.
     */
    long countInUse(long from, long to, long enough) throws IOException {
        long count = 0;
        for (long at = from; at < to && count < enough; ) {
            long tableIndex = at / blockEntries;
            if (tableIndex >= table.length) {
                break;
            }
            long blockEnd = Math.min(to, (tableIndex + 1) * blockEntries);
            long blockOffset = table[(int) tableIndex] & ~0x1FFL;
            if (blockOffset != 0) {
                count += RefcountBlock.countNonZero(blocks.get(blockOffset), at - tableIndex * blockEntries,
                        blockEnd - tableIndex * blockEntries, order);
            }
            at = blockEnd;
        }
        return count;
    }

    /** Whether a refcount block covers {@code clusterIndex}. */
    boolean hasBlock(long clusterIndex) {
        long tableIndex = clusterIndex / blockEntries;
        return tableIndex < table.length && (table[(int) tableIndex] & ~0x1FFL) != 0;
    }

    boolean tableCovers(long clusterIndex) {
        return clusterIndex / blockEntries < table.length;
    }

    /** First cluster of the range the block for {@code clusterIndex} covers. */
    long blockRangeStart(long clusterIndex) {
        return clusterIndex / blockEntries * blockEntries;
    }

    long blockEntries() {
        return blockEntries;
    }

    /** Sets the refcount of a cluster whose block exists. */
    void set(long clusterIndex, long value) throws IOException {
        if (value < 0 || value > max()) {
            throw new ImageException(name + ": refcount of cluster " + clusterIndex + " would be " + value
                    + ", outside 0.." + max());
        }
        long tableIndex = clusterIndex / blockEntries;
        long blockOffset = table[(int) tableIndex] & ~0x1FFL;
        MemorySegment block = blocks.get(blockOffset);
        RefcountBlock.set(block, (int) (clusterIndex % blockEntries), order, value);
        dirtyBlocks.put(blockOffset, block);
    }

    /**
     * Installs a new, empty refcount block at host cluster {@code blockCluster} (inside the range it
     * covers, so it counts itself) for the range of table entry {@code tableIndex}.
     */
    void installBlock(long tableIndex, long blockCluster) throws IOException {
        long blockOffset = blockCluster << clusterBits;
        MemorySegment block = MemorySegment.ofArray(new byte[(int) clusterSize]);
        dirtyBlocks.put(blockOffset, block);
        blocks.invalidate(blockOffset);
        table[(int) tableIndex] = blockOffset;
        dirtyTable.set((int) tableIndex);
        set(blockCluster, 1);
    }

    boolean tooManyDirtyBlocks() {
        return dirtyBlocks.size() > MAX_DIRTY_BLOCKS;
    }

    /** Writes the changed refcount blocks (no sync). */
    void writeBlocks() throws IOException {
        for (Map.Entry<Long, MemorySegment> e : dirtyBlocks.entrySet()) {
            file.write(e.getKey(), e.getValue().asByteBuffer());
        }
        dirtyBlocks.clear();
    }

    boolean tableDirty() {
        return !dirtyTable.isEmpty();
    }

    /** Writes the changed entries of the refcount table (no sync). */
    void writeTable() throws IOException {
        for (int i = dirtyTable.nextSetBit(0); i >= 0; i = dirtyTable.nextSetBit(i + 1)) {
            ByteBuffer entry = ByteBuffer.allocate(8).putLong(0, table[i]);
            file.write(tableOffset + 8L * i, entry);
        }
        dirtyTable.clear();
    }

    int tableLength() {
        return table.length;
    }

    long tableOffset() {
        return tableOffset;
    }

    int tableClusters() {
        return tableClusters;
    }

    long[] tableCopy() {
        return table.clone();
    }

    /** Moves to a new, larger table whose entries the caller has written already. */
    void replaceTable(long[] newTable, long newOffset, int newClusters) {
        table = newTable;
        tableOffset = newOffset;
        tableClusters = newClusters;
        dirtyTable.clear();
    }

    /** Grows the in-memory table (entries beyond the old length are 0) before a move. */
    void extendInMemory(int entries) {
        if (entries > table.length) {
            table = java.util.Arrays.copyOf(table, entries);
        }
    }
}
