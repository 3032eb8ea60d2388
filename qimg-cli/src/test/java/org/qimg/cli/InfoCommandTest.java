package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * {@code qimg info} prints what {@code qemu-img info} (QEMU 7.2) prints: the same JSON members with the
 * same values in the same layout, and the same human text.
 */
class InfoCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    private static void assertSameAsQemu(String... args) throws IOException {
        Qimg.Result expected = Qimg.qemuImg(args);
        assertThat(expected.exitCode()).as("qemu-img %s: %s", String.join(" ", args), expected.err()).isZero();
        Qimg.Result actual = Qimg.run(args);
        assertThat(actual.err()).isEmpty();
        assertThat(actual.exitCode()).isZero();
        if (List.of(args).contains("--output=json")) {
            // Every member qemu-img prints, with its value; then the very same text.
            JsonNode ours = JSON.readTree(actual.out());
            JsonNode theirs = JSON.readTree(expected.out());
            assertThat(ours).isEqualTo(theirs);
        }
        assertThat(actual.out()).isEqualTo(expected.out());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void jsonIsQemuImgs(CorpusImage image) throws IOException {
        assertSameAsQemu("info", "--output=json", "-f", image.format(), image.path().toString());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void humanIsQemuImgs(CorpusImage image) throws IOException {
        assertSameAsQemu("info", "-f", image.format(), image.path().toString());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void backingChainIsQemuImgs(CorpusImage image) throws IOException {
        assertSameAsQemu("info", "--backing-chain", "--output=json", "-f", image.format(), image.path().toString());
        assertSameAsQemu("info", "--backing-chain", "-f", image.format(), image.path().toString());
    }

    @Test
    void probesTheFormat() throws IOException {
        assertSameAsQemu("info", "--output=json", Corpus.get().image("chain-3").path().toString());
    }

    /** Like qemu-img, info reads only the image itself: a missing backing file is no error... */
    @Test
    void describesAnImageWhoseBackingFileIsMissing() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Path top = dir.resolve("top.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "1M");
        Tools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2", "1M");
        Files.delete(base);
        assertSameAsQemu("info", "--output=json", top.toString());
        assertSameAsQemu("info", top.toString());
    }

    /** ...but the whole chain cannot be described without it. */
    @Test
    void backingChainFailsOnAMissingBackingFile() throws IOException {
        Path top = dir.resolve("top.qcow2");
        Tools.run("qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", dir.resolve("gone.qcow2").toString(), "-F",
                "qcow2", top.toString(), "1M");
        Qimg.Result r = Qimg.run("info", "--backing-chain", top.toString());
        assertThat(r.exitCode()).isEqualTo(Qimg.qemuImg("info", "--backing-chain", top.toString()).exitCode()).isEqualTo(1);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo("qimg: Could not open '" + dir.resolve("gone.qcow2") + "': No such file or directory\n");
    }

    @Test
    void backingChainLoop() {
        Path a = dir.resolve("a.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", a.toString(), "1M");
        Tools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2", "1M");
        Tools.run(dir, "qemu-img", "rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2");
        Qimg.Result expected = Qimg.qemuImg("info", "--backing-chain", dir.resolve("b.qcow2").toString());
        Qimg.Result actual = Qimg.run("info", "--backing-chain", dir.resolve("b.qcow2").toString());
        assertThat(actual.exitCode()).isEqualTo(expected.exitCode()).isEqualTo(1);
        assertThat(actual.err()).isEqualTo(Qimg.asQimg(expected.err()));
    }

    /** Bitmaps without flags and with a coarse granularity; the dirty and corrupt bits. */
    @Test
    void bitmapsDirtyAndCorrupt() throws IOException {
        Path bitmaps = dir.resolve("bitmaps.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", bitmaps.toString(), "1M");
        Tools.run("qemu-img", "bitmap", "--add", "--disable", bitmaps.toString(), "off");
        Tools.run("qemu-img", "bitmap", "--add", "-g", "128k", bitmaps.toString(), "coarse");
        assertSameAsQemu("info", "--output=json", bitmaps.toString());
        assertSameAsQemu("info", bitmaps.toString());

        Path dirty = dir.resolve("dirty.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", dirty.toString(), "1M");
        // qemu-io aborts on purpose, leaving the dirty bit set.
        Tools.exec(null, List.of("qemu-io", "-c", "write 0 64k", "-c", "abort", dirty.toString()));
        assertThat(Qimg.run("info", dirty.toString()).out()).contains("cleanly shut down: no\n");
        assertSameAsQemu("info", "--output=json", dirty.toString());
        assertSameAsQemu("info", dirty.toString());

        Path corrupt = dir.resolve("corrupt.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", corrupt.toString(), "1M");
        try (RandomAccessFile f = new RandomAccessFile(corrupt.toFile(), "rw")) {
            f.seek(79);
            f.write(2); // incompatible feature bit 1: corrupt
        }
        assertSameAsQemu("info", "--output=json", corrupt.toString());
        assertSameAsQemu("info", corrupt.toString());
    }

    /** Snapshot names past the column width and outside ASCII (escaped in JSON as qemu-img does). */
    @Test
    void snapshotNames() throws IOException {
        Path image = dir.resolve("names.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "1M");
        Tools.run("qemu-img", "snapshot", "-c", "a-snapshot-name-longer-than-its-column", image.toString());
        Tools.run("qemu-img", "snapshot", "-c", "sn\u00e4p\"\\ \u20ac \ud83d\ude00", image.toString());
        assertSameAsQemu("info", "--output=json", image.toString());
        assertSameAsQemu("info", image.toString());
    }

    @Test
    void badInputIsOneLine() throws IOException {
        Path folder = Files.createDirectory(dir.resolve("folder"));
        Path notQcow2 = dir.resolve("text.qcow2");
        Files.writeString(notQcow2, "hello");
        for (String[] args : new String[][] {
                {"info", dir.resolve("missing.qcow2").toString()},
                {"info", folder.toString()},
                {"info", "--output=xml", notQcow2.toString()},
                {"info", "-f", "vmdk", notQcow2.toString()},
                {"info", "-f", "qcow2", notQcow2.toString()},
                {"info"},
        }) {
            Qimg.Result r = Qimg.run(args);
            assertThat(r.exitCode()).as(String.join(" ", args)).isEqualTo(1);
            assertThat(r.out()).isEmpty();
            assertThat(r.err()).startsWith("qimg: ").endsWith("\n").doesNotContain("\tat ");
            assertThat(r.err().lines()).hasSize(1);
        }
        assertThat(Qimg.run("info", dir.resolve("missing.qcow2").toString()).err())
                .isEqualTo("qimg: Could not open '" + dir.resolve("missing.qcow2") + "': No such file or directory\n");
    }
}
