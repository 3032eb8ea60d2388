package org.qimg.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import org.junit.jupiter.api.Test;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

class RefcountBlockTest {
    @Test
    void subByteWidthsArePackedLeastSignificantBitFirst() {
        MemorySegment block = MemorySegment.ofArray(new byte[] {(byte) 0b1011_0010, (byte) 0x81});
        assertThat(RefcountBlock.get(block, 0, 0)).isZero();
        assertThat(RefcountBlock.get(block, 1, 0)).isEqualTo(1);
        assertThat(RefcountBlock.get(block, 7, 0)).isEqualTo(1);
        assertThat(RefcountBlock.get(block, 8, 0)).isEqualTo(1);
        assertThat(RefcountBlock.get(block, 0, 1)).isEqualTo(0b10);
        assertThat(RefcountBlock.get(block, 3, 1)).isEqualTo(0b10);
        assertThat(RefcountBlock.get(block, 0, 2)).isEqualTo(0b0010);
        assertThat(RefcountBlock.get(block, 1, 2)).isEqualTo(0b1011);
        assertThat(RefcountBlock.get(block, 1, 3)).isEqualTo(0x81);
    }

    @Test
    void wideEntriesAreBigEndian() {
        byte[] raw = new byte[16];
        raw[0] = 0x01;
        raw[1] = 0x02;
        raw[15] = 0x07;
        MemorySegment block = MemorySegment.ofArray(raw);
        assertThat(RefcountBlock.get(block, 0, 4)).isEqualTo(0x0102);
        assertThat(RefcountBlock.get(block, 0, 5)).isEqualTo(0x01020000L);
        assertThat(RefcountBlock.get(block, 1, 6)).isEqualTo(7);
    }

    @Test
    void setPacksSubByteWidthsLeastSignificantBitFirst() {
        MemorySegment block = MemorySegment.ofArray(new byte[2]);
        RefcountBlock.set(block, 1, 0, 1);
        RefcountBlock.set(block, 7, 0, 1);
        RefcountBlock.set(block, 8, 0, 1);
        assertThat(block.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).containsExactly((byte) 0x82, (byte) 0x01);
        block.fill((byte) 0);
        RefcountBlock.set(block, 0, 1, 2);
        RefcountBlock.set(block, 3, 1, 3);
        RefcountBlock.set(block, 3, 2, 0xB);
        assertThat(block.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).containsExactly((byte) 0xC2, (byte) 0xB0);
    }

    @Test
    void setWritesWideEntriesBigEndian() {
        MemorySegment block = MemorySegment.ofArray(new byte[16]);
        RefcountBlock.set(block, 1, 3, 0xFF);
        RefcountBlock.set(block, 1, 4, 0x0102);
        RefcountBlock.set(block, 1, 5, 0xA0B0C0D0L);
        assertThat(block.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).startsWith(
                (byte) 0, (byte) 0xFF, (byte) 0x01, (byte) 0x02, (byte) 0xA0, (byte) 0xB0, (byte) 0xC0, (byte) 0xD0);
        RefcountBlock.set(block, 1, 6, -1L);
        assertThat(RefcountBlock.get(block, 1, 6)).isEqualTo(-1L);
        assertThat(RefcountBlock.get(block, 0, 6)).isEqualTo(0x00FF0102A0B0C0D0L);
    }

    @Test
    void setRefusesValuesThatDoNotFit() {
        MemorySegment block = MemorySegment.ofArray(new byte[8]);
        for (int order = 0; order < 6; order++) {
            int o = order;
            long max = RefcountBlock.maxValue(order);
            RefcountBlock.set(block, 0, order, max);
            assertThat(RefcountBlock.get(block, 0, order)).isEqualTo(max);
            assertThatThrownBy(() -> RefcountBlock.set(block, 0, o, max + 1))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit");
            assertThatThrownBy(() -> RefcountBlock.set(block, 0, o, -1))
                    .isInstanceOf(IllegalArgumentException.class);
        }
        assertThatThrownBy(() -> RefcountBlock.set(block, 0, 7, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThat(RefcountBlock.maxValue(4)).isEqualTo(0xFFFF);
        assertThat(RefcountBlock.maxValue(0)).isEqualTo(1);
    }

    /** set then get returns the value, and no other entry of the block changes. */
    @Property(tries = 300)
    void setChangesExactlyOneEntry(@ForAll @IntRange(min = 0, max = 6) int order, @ForAll @IntRange(min = 0, max = 63) int index,
                                   @ForAll long seed) {
        Random random = new Random(seed);
        byte[] raw = new byte[512];
        random.nextBytes(raw);
        MemorySegment block = MemorySegment.ofArray(raw);
        int entries = 512 * 8 >> order;
        long[] before = new long[entries];
        for (int i = 0; i < entries; i++) {
            before[i] = RefcountBlock.get(block, i, order);
        }
        long value = order == 6 ? random.nextLong() : random.nextLong() & RefcountBlock.maxValue(order);
        RefcountBlock.set(block, index, order, value);
        for (int i = 0; i < entries; i++) {
            assertThat(RefcountBlock.get(block, i, order)).isEqualTo(i == index ? value : before[i]);
        }
    }

    /** countNonZero agrees with counting entry by entry, for every width, range and mix of zero entries. */
    @Property(tries = 400)
    void countNonZeroCountsWhatGetSees(@ForAll @IntRange(min = 0, max = 6) int order,
                                       @ForAll @IntRange(min = 0, max = 4096) int a,
                                       @ForAll @IntRange(min = 0, max = 4096) int b, @ForAll long seed) {
        Random random = new Random(seed);
        byte[] raw = new byte[512];
        int entries = 512 * 8 >> order;
        MemorySegment block = MemorySegment.ofArray(raw);
        // Mostly zero entries, some with only their lowest or highest bit set, some random.
        for (int i = 0; i < entries; i++) {
            switch (random.nextInt(4)) {
                case 0 -> RefcountBlock.set(block, i, order, 1);
                case 1 -> RefcountBlock.set(block, i, order, order == 6 ? Long.MIN_VALUE
                        : 1L << ((1 << order) - 1));
                case 2 -> RefcountBlock.set(block, i, order, order == 6 ? random.nextLong()
                        : random.nextLong() & RefcountBlock.maxValue(order));
                default -> {
                }
            }
        }
        int from = Math.min(a, b) % (entries + 1);
        int to = Math.min(entries, Math.max(a, b));
        long expected = 0;
        for (int i = from; i < to; i++) {
            expected += RefcountBlock.get(block, i, order) != 0 ? 1 : 0;
        }
        assertThat(RefcountBlock.countNonZero(block, from, to, order)).isEqualTo(expected);
    }
}
