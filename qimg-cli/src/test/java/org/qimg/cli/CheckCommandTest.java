package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Damage;

/**
 * {@code qimg check} prints what {@code qemu-img check} prints — the human and the JSON report, the
 * messages on stderr — and exits as it does, on the corpus and on damaged copies, with and without
 * repairs.
 */
class CheckCommandTest {
    @TempDir
    Path dir;

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    private static void assertSameAsQemu(String... args) {
        Qimg.Result expected = Qimg.qemuImg(args);
        Qimg.Result actual = Qimg.run(args);
        assertThat(actual.out()).isEqualTo(expected.out());
        assertThat(actual.err()).isEqualTo(Qimg.asQimg(expected.err()));
        assertThat(actual.exitCode()).isEqualTo(expected.exitCode());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void sameReportsAsQemuImgOnTheCorpus(CorpusImage image) {
        assertSameAsQemu("check", image.path().toString());
        assertSameAsQemu("check", "--output=json", image.path().toString());
    }

    static Stream<Arguments> damages() {
        return Stream.of(Arguments.of("v3-64k-mixed", "leak"), Arguments.of("compressed-zstd", "leak"),
                Arguments.of("ext-64k", "zero"), Arguments.of("refcount64", "double"), Arguments.of("v2-64k", "zero"),
                Arguments.of("v3-512b", "double"));
    }

    private Path damaged(String name, String kind, String copy) throws IOException {
        Path image = dir.resolve(name + "-" + kind + "-" + copy + ".qcow2");
        Files.copy(Corpus.get().image(name).path(), image);
        switch (kind) {
            case "leak" -> Damage.leakDataCluster(image);
            case "zero" -> Damage.setRefcount(image, Damage.firstDataCluster(image), 0);
            default -> Damage.setRefcount(image, Damage.firstDataCluster(image), 2);
        }
        return image;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("damages")
    void sameReportsAndRepairsAsQemuImgOnDamagedCopies(String name, String kind) throws IOException {
        Path image = damaged(name, kind, "a");
        assertSameAsQemu("check", image.toString());
        assertSameAsQemu("check", "--output=json", image.toString());
        for (String mode : List.of("leaks", "all")) {
            Path ours = damaged(name, kind, "qimg-" + mode);
            Path theirs = damaged(name, kind, "qemu-" + mode);
            Qimg.Result expected = Qimg.qemuImg("check", "-r", mode, theirs.toString());
            Qimg.Result actual = Qimg.run("check", "-r", mode, ours.toString());
            assertThat(actual.out()).isEqualTo(expected.out().replace(theirs.toString(), ours.toString()));
            assertThat(actual.err()).isEqualTo(Qimg.asQimg(expected.err()));
            assertThat(actual.exitCode()).isEqualTo(expected.exitCode());
            assertThat(Files.mismatch(ours, theirs)).as("repaired files differ at").isEqualTo(-1);
            if (expected.exitCode() == 0) {
                assertSameAsQemu("check", "--output=json", ours.toString());
            }
        }
    }

    @Test
    void refusesWhatQemuImgRefuses() throws IOException {
        Path image = Corpus.get().image("v3-64k-mixed").path();
        Qimg.Result r = Qimg.run("check", "-r", "some", image.toString());
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("qimg: Unknown option value for -r (expecting 'leaks' or 'all'): some\n");
        r = Qimg.run("check", "--output=xml", image.toString());
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(Qimg.run("check", dir.resolve("missing.qcow2").toString()).exitCode())
                .isEqualTo(Qimg.qemuImg("check", dir.resolve("missing.qcow2").toString()).exitCode()).isEqualTo(1);
        Path garbage = dir.resolve("garbage.qcow2");
        Files.write(garbage, new byte[] {'Q', 'F', 'I', (byte) 0xfb, 0, 0, 0, 9});
        r = Qimg.run("check", garbage.toString());
        assertThat(r.exitCode()).isEqualTo(Qimg.qemuImg("check", garbage.toString()).exitCode()).isEqualTo(1);
        assertThat(r.err().lines().toList()).hasSize(1);
        assertThat(r.out()).isEmpty();
        // An image whose external data file is missing cannot be opened, so it is not checked.
        Path ext = dir.resolve("ext.qcow2");
        Path data = dir.resolve("ext.data");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + data, ext.toString(), "1M");
        Files.delete(data);
        for (String[] args : new String[][] {{"check", ext.toString()}, {"check", "-r", "all", ext.toString()}}) {
            r = Qimg.run(args);
            assertThat(r.exitCode()).as(String.join(" ", args)).isEqualTo(Qimg.qemuImg(args).exitCode()).isEqualTo(1);
            assertThat(r.err()).contains("Could not open data file").contains("No such file or directory");
            assertThat(r.out()).isEmpty();
        }
    }

    /** A crash with lazy refcounts leaves the dirty bit and unwritten refcounts; -r all rebuilds them. */
    @Test
    void dirtyImageAfterACrash() throws IOException {
        Path ours = dir.resolve("dirty-ours.qcow2");
        Path theirs = dir.resolve("dirty-theirs.qcow2");
        org.qimg.testing.Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on",
                ours.toString(), "8M");
        // qemu-io's "abort" ends the process the way a crash does: refcounts never written, image dirty.
        org.qimg.testing.Tools.exec(null, List.of("qemu-io", "-c", "write -P 1 0 1M", "-c", "write -P 2 4M 64k",
                "-c", "abort", ours.toString()));
        assertThat(Damage.header(ours).dirty()).isTrue();
        Files.copy(ours, theirs);
        assertSameAsQemu("check", ours.toString());
        Qimg.Result expected = Qimg.qemuImg("check", "-r", "all", theirs.toString());
        Qimg.Result actual = Qimg.run("check", "-r", "all", ours.toString());
        assertThat(actual.out()).isEqualTo(expected.out());
        assertThat(actual.exitCode()).isEqualTo(expected.exitCode()).isZero();
        assertThat(Files.mismatch(ours, theirs)).isEqualTo(-1);
        assertThat(Damage.header(ours).dirty()).isFalse();
    }

    @Test
    void quietPrintsNothing() {
        Path image = Corpus.get().image("chain-3").path();
        Qimg.Result r = Qimg.run("check", "-q", image.toString());
        assertThat(r.out()).isEmpty();
        assertThat(r.exitCode()).isZero();
    }
}
