package org.qimg.format;

/**
 * One entry of the persistent-bitmap directory (qcow2.txt, "Bitmap directory").
 *
 * @param name             the bitmap's name
 * @param tableOffset      where its bitmap table starts in the image file
 * @param tableSize        number of entries of that table
 * @param flags            bit 0 in_use, bit 1 auto, bit 2 extra_data_compatible
 * @param type             1 for dirty-tracking bitmaps
 * @param granularityBits  log2 of the bytes one bit covers
 */
public record Bitmap(String name, long tableOffset, int tableSize, int flags, int type, int granularityBits) {
    public static final int FLAG_IN_USE = 1;
    public static final int FLAG_AUTO = 1 << 1;
    public static final int FLAG_EXTRA_DATA_COMPATIBLE = 1 << 2;

    public boolean inUse() {
        return (flags & FLAG_IN_USE) != 0;
    }

    public boolean auto() {
        return (flags & FLAG_AUTO) != 0;
    }

    /** Bytes of guest data one bit of the bitmap covers. */
    public long granularity() {
        return 1L << granularityBits;
    }
}
