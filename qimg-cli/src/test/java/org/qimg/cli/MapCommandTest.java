package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;

/** {@code qimg map} prints what {@code qemu-img map} prints, byte for byte, on every corpus image. */
class MapCommandTest {

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void jsonIsQemuImgs(CorpusImage image) {
        Qimg.Result expected = Qimg.qemuImg("map", "--output=json", "-f", image.format(), image.path().toString());
        assertThat(expected.exitCode()).isZero();
        Qimg.Result actual = Qimg.run("map", "--output=json", "-f", image.format(), image.path().toString());
        assertThat(actual.err()).isEmpty();
        assertThat(actual.exitCode()).isZero();
        assertThat(actual.out()).isEqualTo(expected.out());
    }

    /** Where qemu-img refuses (compressed clusters have no offset to print), qimg fails the same way. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void humanIsQemuImgs(CorpusImage image) {
        Qimg.Result expected = Qimg.qemuImg("map", "-f", image.format(), image.path().toString());
        Qimg.Result actual = Qimg.run("map", "-f", image.format(), image.path().toString());
        assertThat(actual.exitCode()).isEqualTo(expected.exitCode());
        assertThat(actual.out()).isEqualTo(expected.out());
        assertThat(actual.err()).isEqualTo(Qimg.asQimg(expected.err()));
    }
}
