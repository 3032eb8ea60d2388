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
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.QemuMap;
import org.qimg.testing.Tools;

/**
 * {@code qimg convert -O raw}: the output reads exactly as the image does (qemu-img compare says so)
 * and is sparse: every range qemu-img's map calls zero is a hole of the output file.
 */
class ConvertCommandTest {
    @TempDir
    Path dir;

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void copiesContentAndLeavesHoles(CorpusImage image) throws IOException {
        Path out = dir.resolve(image.name() + ".raw");
        Qimg.Result r = Qimg.run("convert", "-f", image.format(), "-O", "raw", image.path().toString(), out.toString());
        assertThat(r.err()).isEmpty();
        assertThat(r.out()).isEmpty();
        assertThat(r.exitCode()).isZero();

        List<QemuMap.Entry> source = QemuMap.of(image);
        long size = source.stream().mapToLong(QemuMap.Entry::end).max().orElse(0);
        assertThat(Files.size(out)).isEqualTo(size);

        Qimg.Result same = Qimg.qemuImg("compare", "-f", "raw", "-F", image.format(), out.toString(),
                image.path().toString());
        assertThat(same.out()).isEqualTo("Images are identical.\n");
        assertThat(same.exitCode()).isZero();

        // The output's own map, from lseek(SEEK_DATA/SEEK_HOLE): no data where the source has a hole,
        // to the file system's block: a hole can only cover whole blocks of the file.
        long block = Long.parseLong(Tools.run("stat", "-c", "%o", out.toString()).strip());
        List<QemuMap.Entry> output = QemuMap.parse(Tools.run("qemu-img", "map", "--output=json", "-f", "raw",
                out.toString()));
        for (QemuMap.Entry hole : source.stream().filter(QemuMap.Entry::zero).toList()) {
            // The first block is data whatever the source holds there, as in qemu-img's output.
            long from = Math.max((4096 + block - 1) / block * block, (hole.start() + block - 1) / block * block);
            long to = hole.end() / block * block;
            if (from >= to) {
                continue;
            }
            for (QemuMap.Entry e : output) {
                if (e.start() < to && from < e.end()) {
                    assertThat(e.data()).as("output data at %d+%d inside the source hole %s", e.start(), e.length(), hole)
                            .isFalse();
                }
            }
        }
    }

    @Test
    void progressGoesToStandardError() {
        CorpusImage image = Corpus.get().image("chain-3");
        Path out = dir.resolve("progress.raw");
        Qimg.Result r = Qimg.run("convert", "-p", "-O", "raw", image.path().toString(), out.toString());
        assertThat(r.exitCode()).isZero();
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).startsWith("    (0.00/100%)\r").endsWith("    (100.00/100%)\r\n");
        assertThat(r.err()).matches("(    \\(\\d{1,3}\\.\\d\\d/100%\\)\\r)+\\n");
    }

    @Test
    void overwritesAnExistingFileAndSetsItsLength() throws IOException {
        CorpusImage image = Corpus.get().image("v3-64k-mixed");
        Path out = dir.resolve("existing.raw");
        Files.write(out, new byte[20 << 20]);
        assertThat(Qimg.run("convert", image.path().toString(), out.toString()).exitCode()).isZero();
        assertThat(Files.size(out)).isEqualTo(8 << 20);
        assertThat(Qimg.qemuImg("compare", "-F", "raw", image.path().toString(), out.toString()).exitCode()).isZero();
    }

    @Test
    void sparseSizeZeroWritesAllData() {
        CorpusImage image = Corpus.get().image("prealloc-full");
        Path dense = dir.resolve("dense.raw");
        Path sparse = dir.resolve("sparse.raw");
        assertThat(Qimg.run("convert", "-S", "0", image.path().toString(), dense.toString()).exitCode()).isZero();
        assertThat(Qimg.run("convert", image.path().toString(), sparse.toString()).exitCode()).isZero();
        // Preallocated clusters are data that reads as zeroes: -S 0 writes them, the default skips them.
        assertThat(allocated(dense)).isGreaterThan(allocated(sparse));
        assertThat(Qimg.qemuImg("compare", "-f", "raw", "-F", "raw", dense.toString(), sparse.toString()).exitCode())
                .isZero();
    }

    /** Bytes the file occupies on disk (st_blocks * 512). */
    private static long allocated(Path file) {
        return Long.parseLong(Tools.run("stat", "-c", "%b", file.toString()).strip()) * 512;
    }

    @Test
    void refusesToOverwriteItsSource() throws IOException {
        CorpusImage image = Corpus.get().image("chain-3");
        byte[] before = Files.readAllBytes(Corpus.get().image("chain-2").path());
        Qimg.Result r = Qimg.run("convert", image.path().toString(), Corpus.get().image("chain-2").path().toString());
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(r.err()).startsWith("qimg: ").contains("refusing to overwrite it");
        assertThat(Files.readAllBytes(Corpus.get().image("chain-2").path())).isEqualTo(before);
    }

    @Test
    void damagedSourceFailsInOneLine() throws IOException {
        Path bad = Qimg.damagedCopy(dir);
        Path out = dir.resolve("out.raw");
        Qimg.Result r = Qimg.run("convert", "-p", "-O", "raw", bad.toString(), out.toString());
        assertThat(r.exitCode()).isEqualTo(1).isEqualTo(Qimg.qemuImg("convert", "-O", "raw", bad.toString(),
                dir.resolve("qemu.raw").toString()).exitCode());
        assertThat(r.err()).doesNotContain("\tat ").contains("qimg: " + bad + ": cluster offset 0x10200 unaligned")
                .endsWith(")\n");
    }

    @Test
    void badInputIsOneLine() throws IOException {
        String image = Corpus.get().image("v3-4k").path().toString();
        Path folder = Files.createDirectory(dir.resolve("folder"));
        for (String[] args : new String[][] {
                {"convert", "-c", image, dir.resolve("a.raw").toString()},
                {"convert", "-O", "qcow2", "-o", "cluster_size=3000", image, dir.resolve("a.qcow2").toString()},
                {"convert", "-O", "vmdk", image, dir.resolve("a.vmdk").toString()},
                {"convert", "-S", "1000", image, dir.resolve("b.raw").toString()},
                {"convert", "-S", "32M", image, dir.resolve("b.raw").toString()},
                {"convert", "-f", "qcow3", image, dir.resolve("c.raw").toString()},
                {"convert", dir.resolve("missing.qcow2").toString(), dir.resolve("d.raw").toString()},
                {"convert", image, dir.resolve("no/such/folder/e.raw").toString()},
                {"convert", image, folder.toString()},
                {"convert", image},
        }) {
            Qimg.Result r = Qimg.run(args);
            assertThat(r.exitCode()).as(String.join(" ", args)).isEqualTo(1);
            assertThat(r.out()).isEmpty();
            assertThat(r.err()).startsWith("qimg: ").endsWith("\n").doesNotContain("\tat ");
            assertThat(r.err().lines()).hasSize(1);
        }
        assertThat(Qimg.run("convert", "-c", image, dir.resolve("a.raw").toString()).err())
                .isEqualTo("qimg: -c, -o and -B need -O qcow2\n");
        assertThat(dir.resolve("a.raw")).doesNotExist();
        assertThat(Qimg.run("convert", image, dir.resolve("no/such/folder/e.raw").toString()).err())
                .isEqualTo("qimg: Could not create '" + dir.resolve("no/such/folder/e.raw") + "': No such file or directory\n");
    }

    /** Converting onto an image that another process uses fails, one line, and leaves it as it was. */
    @Test
    void refusesAnOutputInUse() throws Exception {
        Path source = dir.resolve("source.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", source.toString(), "1M");
        Path busy = dir.resolve("busy.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", busy.toString(), "1M");
        Tools.run("qemu-io", "-f", "qcow2", "-c", "write -q -P 7 0 64k", busy.toString());
        byte[] before = Files.readAllBytes(busy);
        try (Tools.Holder qemu = Tools.holdOpen(busy)) {
            for (String format : List.of("qcow2", "raw")) {
                Qimg.Result r = Qimg.run("convert", "-O", format, source.toString(), busy.toString());
                assertThat(r.exitCode()).as(format).isEqualTo(1);
                assertThat(r.err()).as(format).startsWith("qimg: ").contains("Failed to get \"write\" lock")
                        .endsWith("\n");
                assertThat(r.err().lines()).hasSize(1);
                assertThat(Files.readAllBytes(busy)).as(format).isEqualTo(before);
            }
        }
    }

    /**
     * {@code -n} writes into an existing image full of other bytes, qcow2 or raw, as qemu-img's -n does:
     * the same content, and the same map (zero clusters, punched holes) as qemu-img's own output.
     */
    @Test
    void writesIntoAnExistingImageWithN() throws IOException {
        Path source = Tools.qcow2(dir.resolve("n-source.qcow2"), "4M", "write -q -P 5 1M 64k",
                "write -q -z 2M 64k", "write -q -P 0 3M 8k");
        for (String format : List.of("qcow2", "raw")) {
            Path theirs = dir.resolve("n-theirs." + format);
            Path ours = dir.resolve("n-ours." + format);
            for (Path p : List.of(theirs, ours)) {
                Tools.run("qemu-img", "create", "-q", "-f", format, p.toString(), "4M");
                Tools.run("qemu-io", "-f", format, "-c", "write -q -P 9 0 4M", p.toString());
            }
            Tools.run("qemu-img", "convert", "-n", "-O", format, source.toString(), theirs.toString());
            Qimg.Result r = Qimg.run("convert", "-n", "-O", format, source.toString(), ours.toString());
            assertThat(r.exitCode()).as(format + ": " + r.err()).isZero();
            assertThat(Tools.run("qemu-img", "compare", "-f", format, "-F", "qcow2", ours.toString(), source.toString()))
                    .as(format).isEqualTo("Images are identical.\n");
            assertThat(Tools.run("qemu-img", "map", "--output=json", "-f", format, ours.toString())).as(format)
                    .isEqualTo(Tools.run("qemu-img", "map", "--output=json", "-f", format, theirs.toString()));
            if (format.equals("qcow2")) {
                Tools.run("qemu-img", "check", ours.toString());
            }
        }
        Path small = dir.resolve("n-small.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", small.toString(), "1M");
        String[][] refused = {
            {"convert", "-n", "-O", "qcow2", source.toString(), small.toString()},
            {"convert", "-n", "-o", "cluster_size=4k", "-O", "qcow2", source.toString(), small.toString()},
            {"convert", "-n", source.toString(), dir.resolve("n-missing.raw").toString()},
        };
        for (String[] args : refused) {
            Qimg.Result r = Qimg.run(args);
            assertThat(r.exitCode()).as(String.join(" ", args)).isEqualTo(Qimg.qemuImg(args).exitCode()).isEqualTo(1);
            assertThat(r.err().lines()).as(String.join(" ", args)).hasSize(1);
        }
    }

    /** -t: qemu-img's cache modes; all but unsafe (the default) flush the output at the end. */
    @Test
    void takesQemuImgsCacheModes() throws IOException {
        Path source = Corpus.get().image("v3-64k-mixed").path();
        for (String mode : List.of("unsafe", "none", "writeback", "writethrough", "directsync")) {
            for (String format : List.of("raw", "qcow2")) {
                Path out = dir.resolve("t-" + mode + "." + format);
                Qimg.Result r = Qimg.run("convert", "-t", mode, "-O", format, source.toString(), out.toString());
                assertThat(r.exitCode()).as(mode + " " + format + ": " + r.err()).isZero();
                assertThat(Tools.run("qemu-img", "compare", "-f", format, out.toString(), source.toString()))
                        .isEqualTo("Images are identical.\n");
            }
        }
        String[] bad = {"convert", "-t", "sometimes", source.toString(), dir.resolve("t-bad.raw").toString()};
        Qimg.Result r = Qimg.run(bad);
        assertThat(dir.resolve("t-bad.raw")).doesNotExist(); // (qemu-img creates it before it fails)
        assertThat(r.exitCode()).isEqualTo(Qimg.qemuImg(bad).exitCode()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("qimg: Invalid cache option: sometimes\n");
    }

    /** A raw output's map is qemu-img's: its first block is data (QEMU writes it when it makes the file), then holes. */
    @Test
    void theRawOutputsMapIsQemuImgs() throws IOException {
        Path source = Tools.qcow2(dir.resolve("first-block.qcow2"), "4M", "write -q -P 0 0 4M",
                "write -q -P 7 65536 1", "write -q -P 8 1179648 4096");
        Path theirs = dir.resolve("first-block-qemu.raw");
        Path ours = dir.resolve("first-block-qimg.raw");
        Tools.run("qemu-img", "convert", "-O", "raw", source.toString(), theirs.toString());
        Qimg.Result r = Qimg.run("convert", "-O", "raw", source.toString(), ours.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(Tools.run("qemu-img", "map", "--output=json", "-f", "raw", ours.toString()))
                .isEqualTo(Tools.run("qemu-img", "map", "--output=json", "-f", "raw", theirs.toString()));
        assertThat(Files.readAllBytes(ours)).isEqualTo(Files.readAllBytes(theirs));
    }
}
