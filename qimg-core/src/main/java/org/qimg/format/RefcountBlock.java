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

    /** Sets entry {@code index} to {@code value}, which must fit the width. */
    public static void set(MemorySegment block, int index, int refcountOrder, long value) {
        int bits = 1 << refcountOrder;
        if (value < 0 || (bits < 64 && value >>> bits != 0)) {
            throw new IllegalArgumentException("refcount " + value + " does not fit " + bits + " bits");
        }
        switch (refcountOrder) {
            case 0, 1, 2 -> {
                int perByte = 8 / bits;
                int shift = (index % perByte) * bits;
                int mask = ((1 << bits) - 1) << shift;
                int b = block.get(ValueLayout.JAVA_BYTE, index / perByte) & 0xFF;
                block.set(ValueLayout.JAVA_BYTE, index / perByte, (byte) ((b & ~mask) | ((int) value << shift)));
            }
            case 3 -> block.set(ValueLayout.JAVA_BYTE, index, (byte) value);
            case 4 -> block.set(BE_SHORT, 2L * index, (short) value);
            case 5 -> block.set(BE_INT, 4L * index, (int) value);
            case 6 -> block.set(BE_LONG, 8L * index, value);
            default -> throw new IllegalArgumentException("refcount_order " + refcountOrder);
        }
    }
}
