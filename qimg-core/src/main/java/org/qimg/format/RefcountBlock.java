package org.qimg.format;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Entries of a refcount block (qcow2.txt, "Host cluster management"): widths of 1, 2 and 4 bits are
 * packed least significant bit first within a byte; 8 to 64 bits are big-endian integers.
 */
public final class RefcountBlock {
    private static final ValueLayout.OfShort BE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt BE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong BE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    private RefcountBlock() {
    }

    /** Entry {@code index} of a block whose entries are {@code 1 << refcountOrder} bits wide. */
    public static long get(MemorySegment block, int index, int refcountOrder) {
        return switch (refcountOrder) {
            case 0, 1, 2 -> {
                int bits = 1 << refcountOrder;
                int perByte = 8 / bits;
                int b = block.get(ValueLayout.JAVA_BYTE, index / perByte) & 0xFF;
                yield (b >>> ((index % perByte) * bits)) & ((1 << bits) - 1);
            }
            case 3 -> block.get(ValueLayout.JAVA_BYTE, index) & 0xFFL;
            case 4 -> block.get(BE_SHORT, 2L * index) & 0xFFFFL;
            case 5 -> block.get(BE_INT, 4L * index) & 0xFFFF_FFFFL;
            case 6 -> block.get(BE_LONG, 8L * index);
            default -> throw new IllegalArgumentException("refcount_order " + refcountOrder);
        };
    }

    /**
     * How many of entries [{@code from}, {@code to}) of a block whose entries are {@code 1 << refcountOrder}
     * bits wide are not zero: eight bytes at a time, each entry folded onto its lowest bit. Whether an
     * entry is zero does not depend on its byte order, only on which bits it spans.
     */
    public static long countNonZero(MemorySegment block, long from, long to, int refcountOrder) {
        checkOrder(refcountOrder);
        int bits = 1 << refcountOrder;
        int perWord = 64 / bits;
        long count = 0;
        long at = from;
        for (; at < to && at % perWord != 0; at++) {
            count += get(block, (int) at, refcountOrder) != 0 ? 1 : 0;
        }
        long lowBits = LOW_BITS[refcountOrder];
        for (; at + perWord <= to; at += perWord) {
            long word = block.get(ValueLayout.JAVA_LONG_UNALIGNED, at / perWord * 8);
            if (word == 0) {
                continue;
            }
            for (int shift = 1; shift < bits; shift <<= 1) {
                word |= word >>> shift;
            }
            count += Long.bitCount(word & lowBits);
        }
        for (; at < to; at++) {
            count += get(block, (int) at, refcountOrder) != 0 ? 1 : 0;
        }
        return count;
    }

    /** For each refcount order, a word with the lowest bit of every entry set. */
    private static final long[] LOW_BITS = {-1L, 0x5555_5555_5555_5555L, 0x1111_1111_1111_1111L,
            0x0101_0101_0101_0101L, 0x0001_0001_0001_0001L, 0x0000_0001_0000_0001L, 1L};

    /** The largest refcount an entry {@code 1 << refcountOrder} bits wide holds (unsigned for 64 bits: -1). */
    public static long maxValue(int refcountOrder) {
        checkOrder(refcountOrder);
        return refcountOrder == 6 ? -1L : (1L << (1 << refcountOrder)) - 1;
    }

    /**
     * Sets entry {@code index} of a block whose entries are {@code 1 << refcountOrder} bits wide. For 64-bit
     * entries {@code value} is unsigned (any long); narrower entries refuse a negative value or one that
     * does not fit.
     */
    public static void set(MemorySegment block, int index, int refcountOrder, long value) {
        checkOrder(refcountOrder);
        if (refcountOrder < 6 && (value < 0 || value > maxValue(refcountOrder))) {
            throw new IllegalArgumentException("refcount " + value + " does not fit in " + (1 << refcountOrder)
                    + " bits");
        }
        switch (refcountOrder) {
            case 0, 1, 2 -> {
                int bits = 1 << refcountOrder;
                int perByte = 8 / bits;
                long byteIndex = index / perByte;
                int shift = (index % perByte) * bits;
                int mask = ((1 << bits) - 1) << shift;
                int old = block.get(ValueLayout.JAVA_BYTE, byteIndex) & 0xFF;
                block.set(ValueLayout.JAVA_BYTE, byteIndex, (byte) ((old & ~mask) | ((int) value << shift)));
            }
            case 3 -> block.set(ValueLayout.JAVA_BYTE, index, (byte) value);
            case 4 -> block.set(BE_SHORT, 2L * index, (short) value);
            case 5 -> block.set(BE_INT, 4L * index, (int) value);
            default -> block.set(BE_LONG, 8L * index, value);
        }
    }

    private static void checkOrder(int refcountOrder) {
        if (refcountOrder < 0 || refcountOrder > 6) {
            throw new IllegalArgumentException("refcount_order " + refcountOrder);
        }
    }
}
