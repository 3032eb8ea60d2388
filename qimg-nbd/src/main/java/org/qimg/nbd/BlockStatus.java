package org.qimg.nbd;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;

import org.qimg.BlockDevice;
import org.qimg.Extent;

/**
 * NBD_CMD_BLOCK_STATUS: the engine's merged extents, turned into one list of descriptors
 * {@code (u32 length, u32 status)} per selected metadata context. Extents with equal status in a
 * context are merged into one descriptor, as qemu-nbd does. The lists cover the same range, from the
 * request's offset to at most its end; a list stops early at {@link Nbd#MAX_EXTENTS_PER_CHUNK}
 * descriptors (proto.md allows a shorter reply, never an empty one), and with NBD_CMD_FLAG_REQ_ONE
 * each list holds exactly one descriptor.
 */
final class BlockStatus {
    private final List<MetaContext> contexts;
    private final int maxDescriptors;
    /** Per context: descriptor lengths and statuses, {@code count[i]} of them. */
    private final long[][] lengths;
    private final int[][] statuses;
    private final int[] count;

    private BlockStatus(List<MetaContext> contexts, int maxDescriptors) {
        this.contexts = contexts;
        this.maxDescriptors = maxDescriptors;
        int n = contexts.size();
        this.lengths = new long[n][16];
        this.statuses = new int[n][16];
        this.count = new int[n];
    }

    /** Collects the descriptors of {@code [offset, offset + length)} (inside the device, length > 0). */
    static BlockStatus of(BlockDevice device, List<MetaContext> contexts, long offset, long length, boolean reqOne)
            throws IOException {
        return of(device, contexts, offset, length, reqOne, Nbd.MAX_EXTENTS_PER_CHUNK);
    }

    static BlockStatus of(BlockDevice device, List<MetaContext> contexts, long offset, long length, boolean reqOne,
                          int maxDescriptors) throws IOException {
        BlockStatus status = new BlockStatus(contexts, reqOne ? 1 : maxDescriptors);
        BlockDevice.ExtentStream extents = device.map(offset, length);
        for (Extent extent = extents.next(); extent != null; extent = extents.next()) {
            if (!status.add(extent)) {
                break;
            }
        }
        return status;
    }

    /** Adds {@code extent} to every list; false (and nothing added) when a list is full. */
    private boolean add(Extent extent) {
        int n = contexts.size();
        int[] values = new int[n];
        for (int i = 0; i < n; i++) {
            values[i] = contexts.get(i).status(extent);
            boolean extends_ = count[i] > 0 && statuses[i][count[i] - 1] == values[i];
            if (!extends_ && count[i] == maxDescriptors) {
                return false;
            }
        }
        for (int i = 0; i < n; i++) {
            int last = count[i] - 1;
            if (last >= 0 && statuses[i][last] == values[i]) {
                lengths[i][last] += extent.length();
            } else {
                if (count[i] == lengths[i].length) {
                    lengths[i] = Arrays.copyOf(lengths[i], count[i] * 2);
                    statuses[i] = Arrays.copyOf(statuses[i], count[i] * 2);
                }
                lengths[i][count[i]] = extent.length();
                statuses[i][count[i]] = values[i];
                count[i]++;
            }
        }
        return true;
    }

    List<MetaContext> contexts() {
        return contexts;
    }

    int descriptors(int contextIndex) {
        return count[contextIndex];
    }

    /** The length of a descriptor: at most the request's u32 length. */
    long length(int contextIndex, int descriptor) {
        return lengths[contextIndex][descriptor];
    }

    int status(int contextIndex, int descriptor) {
        return statuses[contextIndex][descriptor];
    }

    /** Bytes of all the NBD_REPLY_TYPE_BLOCK_STATUS chunks, headers included. */
    long replyBytes() {
        long bytes = 0;
        for (int i = 0; i < contexts.size(); i++) {
            bytes += Nbd.CHUNK_HEADER_BYTES + 4 + 8L * count[i];
        }
        return bytes;
    }
}
