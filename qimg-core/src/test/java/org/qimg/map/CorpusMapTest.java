package org.qimg.map;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.QemuMap;

/** The map of every corpus image equals qemu-img's, entry for entry. */
class CorpusMapTest {

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    static List<QemuMap.Entry> ourMap(BlockDevice device) throws IOException {
        List<QemuMap.Entry> entries = new ArrayList<>();
        BlockDevice.ExtentStream stream = device.map(0, device.size());
        for (Extent e = stream.next(); e != null; e = stream.next()) {
            entries.add(new QemuMap.Entry(e.start(), e.length(), e.depth(), e.present(), e.zero(), e.data(),
                    e.hostOffset()));
        }
        return entries;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void mapEqualsQemu(CorpusImage image) throws IOException {
        // qemu-img prints one entry of length 0 for an empty image; the engine yields no extent.
        List<QemuMap.Entry> expected = QemuMap.of(image).stream().filter(e -> e.length() > 0).toList();
        try (BlockDevice device = image.open()) {
            assertThat(ourMap(device)).containsExactlyElementsOf(expected);
        }
    }
}
