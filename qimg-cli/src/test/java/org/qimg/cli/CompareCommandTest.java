package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Tools;

/**
 * {@code qimg compare} answers as {@code qemu-img compare} does (QEMU 7.2): the same exit code and the
 * same message, on identical pairs, differing pairs, pairs of different sizes, in strict mode too.
 */
class CompareCommandTest {
    @TempDir
    static Path copies;

    @TempDir
    Path dir;

    @BeforeAll
    static void rawCopies() throws IOException {
        for (CorpusImage image : Corpus.get().images()) {
            Tools.run("qemu-img", "convert", "-f", image.format(), "-O", "raw", image.path().toString(),
                    copy(image).toString());
        }
        // No Corpus.settle here: qemu-img writes these files with plain writes and leaves the rest as
        // holes (no fallocate, so no unwritten extents whose answers could change), and reading the
        // 1 TiB copy back would cost minutes.
    }

    /** qemu-img's raw copy of a corpus image. */
    static Path copy(CorpusImage image) {
        return copies.resolve(image.name() + ".raw");
    }

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    /** Each image with its neighbours in the corpus list, near and far. */
    static Stream<Arguments> pairs() {
        List<CorpusImage> all = Corpus.get().images();
        List<Arguments> pairs = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            pairs.add(Arguments.of(all.get(i), all.get((i + 1) % all.size())));
            pairs.add(Arguments.of(all.get(i), all.get((i + 7) % all.size())));
        }
        return pairs.stream();
    }

    /** Runs both tools; asserts the same exit code and the same standard output; returns ours. */
    private static Qimg.Result assertSameAsQemu(String... args) {
        Qimg.Result expected = Qimg.qemuImg(args);
        Qimg.Result actual = Qimg.run(args);
        assertThat(actual.exitCode()).as("exit of compare %s (qemu-img: %s%s)", String.join(" ", args), expected.out(),
                expected.err()).isEqualTo(expected.exitCode());
        assertThat(actual.out()).as("compare %s", String.join(" ", args)).isEqualTo(expected.out());
        if (expected.exitCode() <= 1) {
            assertThat(actual.err()).isEmpty();
        } else {
            assertThat(actual.err()).startsWith("qimg: ").doesNotContain("\tat ");
            assertThat(actual.err().lines()).hasSize(1);
        }
        return actual;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void identicalToItsCopy(CorpusImage image) {
        Qimg.Result r = assertSameAsQemu("compare", "-f", image.format(), "-F", "raw", image.path().toString(),
                copy(image).toString());
        assertThat(r.exitCode()).isZero();
        assertThat(r.out()).isEqualTo("Images are identical.\n");
        assertSameAsQemu("compare", "-s", "-f", image.format(), "-F", "raw", image.path().toString(),
                copy(image).toString());
        assertSameAsQemu("compare", "-s", "-f", image.format(), "-F", image.format(), image.path().toString(),
                image.path().toString());
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("pairs")
    void pairsOfCorpusImages(CorpusImage a, CorpusImage b) {
        assertSameAsQemu("compare", "-f", a.format(), "-F", b.format(), a.path().toString(), b.path().toString());
        assertSameAsQemu("compare", "-s", "-f", a.format(), "-F", b.format(), a.path().toString(), b.path().toString());
    }

    /** A changed byte is reported at the start of its 512-byte sector, in data and in holes alike. */
    @Test
    void contentMismatchAtTheChangedSector() throws IOException {
        CorpusImage image = Corpus.get().image("v3-64k-mixed");
        for (long offset : new long[] {196608 + 1234, 5 * 1048576 + 777, 8388607, 0}) {
            Path changed = dir.resolve("changed-" + offset + ".raw");
            Files.copy(copy(image), changed);
            try (RandomAccessFile f = new RandomAccessFile(changed.toFile(), "rw")) {
                f.seek(offset);
                int old = f.read();
                f.seek(offset);
                f.write(old ^ 0x5a);
            }
            Qimg.Result r = assertSameAsQemu("compare", "-F", "raw", image.path().toString(), changed.toString());
            assertThat(r.out()).isEqualTo("Content mismatch at offset " + (offset / 512 * 512) + "!\n");
            assertSameAsQemu("compare", "-f", "raw", changed.toString(), image.path().toString());
        }
    }

    @Test
    void differentSizes() throws IOException {
        CorpusImage image = Corpus.get().image("chain-3");
        Path longer = dir.resolve("longer.raw");
        Files.copy(copy(image), longer);
        try (RandomAccessFile f = new RandomAccessFile(longer.toFile(), "rw")) {
            f.setLength(f.length() + (3 << 20));
        }
        String top = image.path().toString();
        Qimg.Result r = assertSameAsQemu("compare", "-F", "raw", top, longer.toString());
        assertThat(r.out()).isEqualTo("Warning: Image size mismatch!\nImages are identical.\n");
        assertSameAsQemu("compare", "-f", "raw", longer.toString(), top);
        r = assertSameAsQemu("compare", "-s", "-F", "raw", top, longer.toString());
        assertThat(r.out()).isEqualTo("Strict mode: Image size mismatch!\n");

        try (RandomAccessFile f = new RandomAccessFile(longer.toFile(), "rw")) {
            f.seek(f.length() - 1000);
            f.write(1);
        }
        r = assertSameAsQemu("compare", "-F", "raw", top, longer.toString());
        assertThat(r.out()).startsWith("Warning: Image size mismatch!\nContent mismatch at offset ");
        assertSameAsQemu("compare", "-f", "raw", longer.toString(), top);
        // The shorter image's backing chain is longer than itself: long-backing reads its base's data only up to 4M.
        CorpusImage longBacking = Corpus.get().image("long-backing");
        assertSameAsQemu("compare", "-F", "qcow2", longBacking.path().toString(),
                Corpus.get().dir().resolve("long-base.qcow2").toString());
    }

    /** A damaged L2 entry: the map fails (exit 3), as qemu-img's block status does. */
    @Test
    void damagedImageExitsWithThree() throws IOException {
        Path bad = Qimg.damagedCopy(dir);
        Path copy = dir.resolve("copy.qcow2");
        Files.copy(bad, copy);
        Qimg.Result r = assertSameAsQemu("compare", "-f", "qcow2", "-F", "qcow2", copy.toString(), bad.toString());
        assertThat(r.exitCode()).isEqualTo(3);
        assertThat(r.err()).startsWith("qimg: Sector allocation test failed for " + copy + ": ");
    }

    @Test
    void quietPrintsNothing() {
        CorpusImage image = Corpus.get().image("v3-4k");
        Qimg.Result r = Qimg.run("compare", "-q", "-F", "raw", image.path().toString(), copy(image).toString());
        assertThat(r.exitCode()).isZero();
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEmpty();
        r = Qimg.run("compare", "-q", image.path().toString(), Corpus.get().image("v3-512b").path().toString());
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(r.out()).isEmpty();
    }

    @Test
    void progressGoesToStandardError() {
        CorpusImage image = Corpus.get().image("v3-4k");
        Qimg.Result r = Qimg.run("compare", "-p", "-F", "raw", image.path().toString(), copy(image).toString());
        assertThat(r.exitCode()).isZero();
        assertThat(r.out()).isEqualTo("Images are identical.\n");
        assertThat(r.err()).startsWith("    (0.00/100%)\r").endsWith("    (100.00/100%)\r\n");
    }

    @Test
    void errorsExitWithTwo() throws IOException {
        String image = Corpus.get().image("v3-4k").path().toString();
        Path text = dir.resolve("text.qcow2");
        Files.writeString(text, "hello");
        assertSameAsQemu("compare", image, dir.resolve("missing.qcow2").toString());
        assertSameAsQemu("compare", dir.resolve("missing.qcow2").toString(), image);
        assertSameAsQemu("compare", "-F", "qcow2", image, text.toString());
        for (String[] args : new String[][] {{"compare", image}, {"compare", "-f", "vmdk", image, image},
                {"compare", "--bogus", image, image}}) {
            Qimg.Result r = Qimg.run(args);
            assertThat(r.exitCode()).as(String.join(" ", args)).isEqualTo(2);
            assertThat(r.err()).startsWith("qimg: ").doesNotContain("\tat ");
            assertThat(r.err().lines()).hasSize(1);
        }
    }
}
