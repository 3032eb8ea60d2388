package org.qimg;

/**
 * One run of guest bytes that share a block status, as the chain decides it. This is the single
 * currency of qimg: seeks, maps, NBD block status and sparse copies are all derived from it.
 *
 * @param start       first guest byte
 * @param length      number of bytes, always positive
 * @param data        reading returns bytes stored in some layer (as QEMU's BDRV_BLOCK_DATA)
 * @param zero        the range reads as zeroes by metadata alone: this is a hole for seekHole
 * @param present     the layer at {@code depth} itself defines the content (BDRV_BLOCK_ALLOCATED)
 * @param depth       the layer that decides the range: 0 is the top image
 * @param hostFile    the file that holds the bytes at {@code hostOffset}, or null when there is none
 * @param hostOffset  where the range starts in {@code hostFile}, or -1
 * @param compressed  the range is stored as compressed clusters
 * @param beyondBacking the range reads as zeroes because the backing image of the layer at
 *                    {@code depth} ends before it (QEMU counts such zeroes as allocated one layer
 *                    further down in its allocation-depth context)
 */
public record Extent(long start, long length, boolean data, boolean zero, boolean present, int depth,
                     String hostFile, long hostOffset, boolean compressed, boolean beyondBacking) {

    public Extent {
        if (length <= 0) {
            throw new IllegalArgumentException("extent at " + start + " has length " + length);
        }
    }

    public long end() {
        return start + length;
    }

    public boolean hasHostOffset() {
        return hostOffset >= 0;
    }

    /** True when the range is a hole in the lseek sense: it reads as zeroes by metadata alone. */
    public boolean isHole() {
        return zero;
    }

    /** Whether {@code next} continues this extent with the same attributes (qemu-img map's merge rule). */
    public boolean mergeableWith(Extent next) {
        if (end() != next.start || data != next.data || zero != next.zero || present != next.present
                || depth != next.depth || compressed != next.compressed
                || beyondBacking != next.beyondBacking || hasHostOffset() != next.hasHostOffset()) {
            return false;
        }
        if (hasHostOffset()) {
            return hostOffset + length == next.hostOffset && hostFile.equals(next.hostFile);
        }
        return true;
    }

    /** This extent followed by {@code next}, which must be {@link #mergeableWith mergeable}. */
    public Extent merge(Extent next) {
        return new Extent(start, length + next.length, data, zero, present, depth, hostFile, hostOffset,
                compressed, beyondBacking);
    }

    /** The part of this extent from {@code from} (inside it) to its end. */
    public Extent from(long from) {
        if (from == start) {
            return this;
        }
        long skip = from - start;
        return new Extent(from, length - skip, data, zero, present, depth, hostFile,
                hasHostOffset() ? hostOffset + skip : -1, compressed, beyondBacking);
    }

    /** The first {@code newLength} bytes of this extent. */
    public Extent truncate(long newLength) {
        if (newLength >= length) {
            return this;
        }
        return new Extent(start, newLength, data, zero, present, depth, hostFile, hostOffset, compressed,
                beyondBacking);
    }
}
