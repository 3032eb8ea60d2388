package org.qimg.map;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.List;
import java.util.OptionalLong;
import java.util.Random;
import java.util.TreeSet;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.BlockDevice;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.QemuMap;

/**
 * seekData / seekHole at every boundary of qemu-img's map, one byte either side, the ends of the
 * device and random offsets, against the answer qemu-img's map implies (hole = "zero": true).
 */
class CorpusSeekTest {

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    static OptionalLong expectedSeek(List<QemuMap.Entry> map, long size, long offset, boolean hole) {
        if (offset >= size) {
            return OptionalLong.empty();
        }
        for (QemuMap.Entry e : map) {
            if (e.end() > offset && e.zero() == hole) {
                return OptionalLong.of(Math.max(offset, e.start()));
            }
        }
        return hole ? OptionalLong.of(size) : OptionalLong.empty();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void seeksAgreeWithQemuMap(CorpusImage image) throws IOException {
        List<QemuMap.Entry> map = QemuMap.of(image).stream().filter(e -> e.length() > 0).toList();
        try (BlockDevice device = image.open()) {
            long size = device.size();
            TreeSet<Long> offsets = new TreeSet<>(List.of(0L, 1L, size - 1, size, size + 1, Long.MAX_VALUE));
            for (QemuMap.Entry e : map) {
                for (long b : new long[] {e.start(), e.end()}) {
                    offsets.add(b - 1);
                    offsets.add(b);
                    offsets.add(b + 1);
                }
            }
            Random random = new Random(image.name().hashCode());
            for (int i = 0; i < 200 && size > 0; i++) {
                offsets.add(random.nextLong(size));
            }
            for (long offset : offsets) {
                if (offset < 0) {
                    continue;
                }
                assertThat(device.seekData(offset)).as("seekData(%d)", offset)
                        .isEqualTo(expectedSeek(map, size, offset, false));
                assertThat(device.seekHole(offset)).as("seekHole(%d)", offset)
                        .isEqualTo(expectedSeek(map, size, offset, true));
            }
        }
    }
}
