package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Tools;

/**
 * convert -O qcow2 (plain, -c zlib, -c zstd) of every corpus image, and -B onto each chain's backing:
 * the output reads the same, checks clean, and every hole of the source is a hole of the output.
 */
class ConvertQcow2Test {
    @TempDir
    Path dir;

    static Stream<Arguments> cases() {
        List<Arguments> all = new ArrayList<>();
        for (CorpusImage image : Corpus.get().images()) {
            all.add(Arguments.of(image, List.<String>of()));
            all.add(Arguments.of(image, List.of("-c")));
            all.add(Arguments.of(image, List.of("-c", "-o", "compression_type=zstd")));
        }
        return all.stream();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void convertedCopyIsIdenticalCleanAndSparse(CorpusImage image, List<String> options) throws IOException {
        Path out = dir.resolve("out.qcow2");
        List<String> args = new ArrayList<>(List.of("convert", "-f", image.format(), "-O", "qcow2"));
        args.addAll(options);
        args.add(image.path().toString());
        args.add(out.toString());
        Qimg.Result r = Qimg.run(args.toArray(String[]::new));
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertClean(out);
        Tools.run("qemu-img", "compare", "-f", image.format(), "-F", "qcow2", image.path().toString(), out.toString());
        assertHolesKept(image, out);
        Files.delete(out);
    }

    static Stream<String> chains() {
        return Stream.of("chain-3", "chain-2", "short-backing", "long-backing", "mid-short", "raw-backing",
                "ext-over-backing", "chain-mixed");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("chains")
    void convertOntoTheBackingImage(String name) throws IOException {
        CorpusImage image = Corpus.get().image(name);
        String backing;
        String backingFormat;
        try (BlockDevice d = image.open()) {
            var chain = (org.qimg.image.ChainDevice) d;
            backing = chain.layers().get(1).name();
            backingFormat = chain.layers().get(1).format();
        }
        Path out = dir.resolve("overlay.qcow2");
        Qimg.Result r = Qimg.run("convert", "-O", "qcow2", "-B", backing, "-F", backingFormat,
                image.path().toString(), out.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertClean(out);
        Tools.run("qemu-img", "compare", "-F", "qcow2", image.path().toString(), out.toString());
        assertThat(Tools.run("qemu-img", "info", out.toString())).contains("backing file: " + backing);
    }

    /**
     * Data clusters that hold zeroes are left out as qemu-img leaves them (its -S sparse detection),
     * and -S 0 writes everything, zeroes and holes included: with each -S, qimg's output has qemu-img's
     * qemu-img map, its content, and checks clean.
     */
    @Test
    void zeroDataIsLeftOutAsQemuImgLeavesIt() throws IOException {
        // Zeroes written as data, but for the last byte of the first 2 MiB and one byte in the second
        // 4 KiB of the third 2 MiB; a hole after 6 MiB.
        Path source = Tools.qcow2(dir.resolve("zero-data.qcow2"), "8M", "write -P 0 0 6M",
                "write -P 7 2097151 1", "write -P 8 4198400 1");
        for (String sparse : List.of("4k", "64k", "128k", "1M", "0", "4k extended", "64k extended")) {
            String s = sparse.split(" ")[0];
            String options = sparse.endsWith("extended") ? "extended_l2=on" : "extended_l2=off";
            Path theirs = dir.resolve("zero-data-qemu-" + sparse.replace(' ', '-') + ".qcow2");
            Path ours = dir.resolve("zero-data-qimg-" + sparse.replace(' ', '-') + ".qcow2");
            Tools.run("qemu-img", "convert", "-S", s, "-O", "qcow2", "-o", options, source.toString(), theirs.toString());
            Qimg.Result r = Qimg.run("convert", "-S", s, "-O", "qcow2", "-o", options, source.toString(), ours.toString());
            assertThat(r.exitCode()).as(r.err()).isZero();
            assertClean(ours);
            Tools.run("qemu-img", "compare", source.toString(), ours.toString());
            assertThat(Tools.run("qemu-img", "map", "--output=json", ours.toString())).as("-S " + sparse)
                    .isEqualTo(Tools.run("qemu-img", "map", "--output=json", theirs.toString()));
        }
        // Onto a backing image (-B), zero data becomes zero clusters, which hide the backing's bytes.
        Path base = dir.resolve("zero-data-base.qcow2");
        Path top = dir.resolve("zero-data-top.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "4M");
        Tools.run("qemu-io", "-f", "qcow2", "-c", "write -q -P 3 0 4M", base.toString());
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
        Tools.run("qemu-io", "-f", "qcow2", "-c", "write -q -P 0 0 1M", "-c", "write -q -P 6 1M 64k",
                "-c", "write -q -z 2M 64k", "-c", "write -q -P 0 3M 4k", "-c", "write -q -P 9 3149824 1", top.toString());
        Path theirs = dir.resolve("zero-data-qemu-B.qcow2");
        Path ours = dir.resolve("zero-data-qimg-B.qcow2");
        Tools.run("qemu-img", "convert", "-O", "qcow2", "-B", base.toString(), "-F", "qcow2", top.toString(),
                theirs.toString());
        Qimg.Result r = Qimg.run("convert", "-O", "qcow2", "-B", base.toString(), "-F", "qcow2", top.toString(),
                ours.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertClean(ours);
        Tools.run("qemu-img", "compare", top.toString(), ours.toString());
        assertThat(Tools.run("qemu-img", "map", "--output=json", ours.toString()))
                .isEqualTo(Tools.run("qemu-img", "map", "--output=json", theirs.toString()));
    }

    @Test
    void progressGoesToStandardError() {
        for (boolean compress : new boolean[] {false, true}) {
            Path out = dir.resolve("progress-" + compress + ".qcow2");
            Qimg.Result r = Qimg.run(compress ? new String[] {"convert", "-p", "-c", "-O", "qcow2",
                    Corpus.get().image("chain-3").path().toString(), out.toString()} : new String[] {"convert", "-p",
                    "-O", "qcow2", Corpus.get().image("chain-3").path().toString(), out.toString()});
            assertThat(r.exitCode()).as(r.err()).isZero();
            assertThat(r.out()).isEmpty();
            assertThat(r.err()).endsWith("    (100.00/100%)\r\n")
                    .matches("(    \\(\\d{1,3}\\.\\d\\d/100%\\)\\r)+\\n");
            Tools.run("qemu-img", "compare", Corpus.get().image("chain-3").path().toString(), out.toString());
        }
    }

    @Test
    void damagedSourceFailsInOneLine() throws IOException {
        Path bad = Qimg.damagedCopy(dir);
        for (String compress : new String[] {"-p", "-c"}) {
            Qimg.Result r = Qimg.run("convert", compress, "-O", "qcow2", bad.toString(),
                    dir.resolve("out.qcow2").toString());
            assertThat(r.exitCode()).isEqualTo(1);
            assertThat(r.err()).doesNotContain("\tat ").contains("qimg: " + bad + ": cluster offset 0x10200 unaligned")
                    .endsWith(")\n");
            assertThat(r.err().lines()).hasSize(1);
        }
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().startsWith("qimg-copy-"));
    }

    private static void assertClean(Path image) {
        Tools.Result check = Tools.exec(null, List.of("qemu-img", "check", image.toString()));
        assertThat(check.exitCode()).as(check.stdout() + check.stderr()).isZero();
    }

    private static void assertHolesKept(CorpusImage source, Path out) throws IOException {
        try (BlockDevice src = source.open();
             BlockDevice dst = Images.open(out.toString(), OpenOptions.defaults().withFormat("qcow2"))) {
            BlockDevice.ExtentStream s = src.map(0, src.size());
            for (Extent e = s.next(); e != null; e = s.next()) {
                // The output's allocation unit is its 64 KiB cluster: holes that cover whole clusters stay.
                long from = (e.start() + 65535) / 65536 * 65536;
                long to = e.end() / 65536 * 65536;
                if (e.zero() && from < to) {
                    long data = dst.seekData(from).orElse(dst.size());
                    assertThat(data).as("hole %s stays a hole", e).isGreaterThanOrEqualTo(to);
                }
            }
        }
    }
}
