package org.qimg.format;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.MemorySegment;

import org.junit.jupiter.api.Test;

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
}
