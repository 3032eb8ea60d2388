package org.qimg.map;

/**
 * The status one layer gives a run of its guest bytes, before the chain is consulted: QEMU's
 * BDRV_BLOCK_DATA / ZERO / OFFSET_VALID flags plus the length they hold for.
 *
 * @param length     bytes from the asked offset with this status
 * @param data       the layer stores data for the run
 * @param zero       the layer says the run reads as zeroes
 * @param hostOffset where the run starts in {@code hostFile}, or -1
 * @param compressed the data is in compressed clusters
 */
public record Run(long length, boolean data, boolean zero, long hostOffset, boolean compressed) {

    /** Whether this layer defines the content; otherwise its backing image (or zeroes) does. */
    public boolean allocated() {
        return data || zero;
    }

    public static Run unallocated(long length) {
        return new Run(length, false, false, -1, false);
    }
}
