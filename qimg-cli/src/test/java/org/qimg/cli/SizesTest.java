package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Human sizes as qemu-img prints them (its size_to_str: C's "%0.3g" in the largest fitting unit). */
class SizesTest {
    @Test
    void humanSizes() {
        assertThat(Sizes.human(0)).isEqualTo("0 B");
        assertThat(Sizes.human(512)).isEqualTo("512 B");
        assertThat(Sizes.human(999)).isEqualTo("999 B");
        assertThat(Sizes.human(1000)).isEqualTo("0.977 KiB");
        assertThat(Sizes.human(1023)).isEqualTo("0.999 KiB");
        assertThat(Sizes.human(1024)).isEqualTo("1 KiB");
        assertThat(Sizes.human(483328)).isEqualTo("472 KiB");
        assertThat(Sizes.human(1023693)).isEqualTo("1e+03 KiB");
        assertThat(Sizes.human(1048575)).isEqualTo("1 MiB");
        assertThat(Sizes.human(1589248)).isEqualTo("1.52 MiB");
        assertThat(Sizes.human(1L << 40)).isEqualTo("1 TiB");
        assertThat(Sizes.human(Long.MAX_VALUE)).isEqualTo("8 EiB");
    }

    @Test
    void cFormatG() {
        assertThat(Sizes.cFormatG3(1.5)).isEqualTo("1.5");
        assertThat(Sizes.cFormatG3(10.25)).isEqualTo("10.2");
        assertThat(Sizes.cFormatG3(100.0)).isEqualTo("100");
        assertThat(Sizes.cFormatG3(999.5)).isEqualTo("1e+03");
        assertThat(Sizes.cFormatG3(0.0001234)).isEqualTo("0.000123");
        assertThat(Sizes.cFormatG3(0.00001234)).isEqualTo("1.23e-05");
    }
}
