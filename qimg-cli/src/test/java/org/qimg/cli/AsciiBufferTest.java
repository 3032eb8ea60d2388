package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

class AsciiBufferTest {

    @Test
    void longsPrintAsLongToStringPrintsThem() {
        long[] values = {0, 1, 9, 10, 99, 100, 999_999_999L, 1_000_000_000L, 1_000_000_001L, 4_398_046_511_104L,
            999_999_999_999_999_999L, 1_000_000_000_000_000_000L, 1_000_000_000_000_000_001L, Long.MAX_VALUE, -1,
            -1_000_000_000L, Long.MIN_VALUE, Long.MIN_VALUE + 1, 123_000_000_456L, 5_000_000_000_000_000_007L};
        AsciiBuffer buffer = new AsciiBuffer(1);
        StringBuilder expected = new StringBuilder();
        for (long v : values) {
            buffer.append(v).append(',');
            expected.append(v).append(',');
        }
        SplittableRandom random = new SplittableRandom(1);
        for (int i = 0; i < 10_000; i++) {
            long v = random.nextLong() >>> random.nextInt(64);
            buffer.append(v).append(' ');
            expected.append(v).append(' ');
        }
        assertThat(buffer.toString()).isEqualTo(expected.toString());
    }

    @Test
    void textAndBytesAppend() {
        AsciiBuffer buffer = new AsciiBuffer(2);
        buffer.append("{ \"a\": ").append(new byte[] {'t', 'r', 'u', 'e'}).append('}');
        assertThat(buffer.toString()).isEqualTo("{ \"a\": true}");
        assertThat(buffer.length()).isEqualTo(12);
    }
}
