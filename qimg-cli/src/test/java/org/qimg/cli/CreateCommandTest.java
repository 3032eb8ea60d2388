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
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * {@code qimg create} against {@code qemu-img create}: the same Formatting line, the same file byte for
 * byte, the same refusals; {@code qemu-img info} sees the options asked for; and images qimg creates
 * take qemu-io's writes and stay clean for both checkers.
 */
class CreateCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /** Runs qemu-img in {@code qemuDir} and qimg on the same names in {@code qimgDir}; returns both. */
    private Qimg.Result[] both(Path qemuDir, Path qimgDir, List<String> args) {
        List<String> qemu = new ArrayList<>(List.of("qemu-img", "create"));
        qemu.addAll(args);
        Tools.Result theirs = Tools.exec(qemuDir, qemu);
        List<String> ours = new ArrayList<>(List.of("create"));
        for (String a : args) {
            ours.add(a.equals("img.qcow2") || a.equals("img.raw") ? qimgDir.resolve(a).toString() : a);
        }
        Qimg.Result result = Qimg.run(ours.toArray(String[]::new));
        String out = result.out().replace(qimgDir.resolve("img").toString(), "img");
        String err = result.err().replace(qimgDir + "/", "");
        return new Qimg.Result[] {new Qimg.Result(theirs.exitCode(), theirs.stdout(), theirs.stderr()),
                new Qimg.Result(result.exitCode(), out, err)};
    }

    private Path[] dirs() throws IOException {
        Path qemuDir = Files.createDirectories(dir.resolve("qemu"));
        Path qimgDir = Files.createDirectories(dir.resolve("qimg"));
        for (Path d : List.of(qemuDir, qimgDir)) {
            Tools.run("qemu-img", "create", "-q", "-f", "raw", d.resolve("base.raw").toString(), "3M");
            Tools.run("qemu-img", "create", "-q", "-f", "qcow2", d.resolve("base.qcow2").toString(), "5000k");
        }
        return new Path[] {qemuDir, qimgDir};
    }

    static Stream<List<String>> accepted() {
        return Stream.of(
                List.of("-f", "qcow2", "img.qcow2", "1G"),
                List.of("-f", "qcow2", "-o", "compat=0.10", "img.qcow2", "64M"),
                List.of("-f", "qcow2", "-o", "cluster_size=4k", "-o", "refcount_bits=8,lazy_refcounts", "img.qcow2", "100M"),
                List.of("-f", "qcow2", "-o", "compat=v3,extended_l2=on,compression_type=zstd,cluster_size=2M", "img.qcow2", "10G"),
                List.of("-f", "qcow2", "-b", "base.raw", "-F", "raw", "img.qcow2"),
                List.of("-f", "qcow2", "-o", "backing_file=base.qcow2,backing_fmt=qcow2", "img.qcow2", "9M"),
                List.of("-f", "qcow2", "-u", "-b", "no,,where.qcow2", "-F", "qcow2", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "preallocation=metadata,cluster_size=512,refcount_bits=1", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "preallocation=falloc,extended_l2=yes", "-b", "base.qcow2", "-F", "qcow2",
                        "img.qcow2"),
                List.of("-f", "qcow2", "-o", "preallocation=full", "img.qcow2", "3000k"),
                List.of("-f", "qcow2", "-q", "img.qcow2", "1M"),
                List.of("-f", "raw", "img.raw", "1000"),
                List.of("-f", "raw", "-o", "preallocation=falloc", "img.raw", "1M"),
                List.of("img.raw", "64k"));
    }

    @ParameterizedTest
    @MethodSource("accepted")
    void createsWhatQemuImgCreates(List<String> args) throws IOException {
        Path[] d = dirs();
        Qimg.Result[] r = both(d[0], d[1], args);
        assertThat(r[1].err()).isEmpty();
        assertThat(r[1].exitCode()).isEqualTo(r[0].exitCode()).isZero();
        assertThat(r[1].out()).isEqualTo(r[0].out());
        String name = args.contains("img.raw") ? "img.raw" : "img.qcow2";
        assertThat(Files.mismatch(d[0].resolve(name), d[1].resolve(name))).as("first differing byte").isEqualTo(-1);
        if (name.equals("img.qcow2")) {
            Qimg.Result check = Qimg.run("check", d[1].resolve(name).toString());
            assertThat(check.exitCode()).as(check.err()).isZero();
        }
    }

    static Stream<List<String>> refused() {
        return Stream.of(
                List.of("-f", "qcow2", "-o", "cluster_size=1000", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "refcount_bits=3", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "compat=0.10,lazy_refcounts=on", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "compat=0.10,refcount_bits=8", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "extended_l2=on,cluster_size=8k", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "data_file_raw=on", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "preallocation=metadata", "-b", "base.raw", "-F", "raw", "img.qcow2"),
                List.of("-f", "qcow2", "-o", "size=1M", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "lazy_refcounts=maybe", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-o", "foo=bar", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-F", "raw", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "-b", "missing.raw", "-F", "raw", "img.qcow2", "1M"),
                List.of("-f", "qcow2", "img.qcow2"),
                List.of("-f", "qcow2", "-o", "cluster_size=512", "img.qcow2", "2T"));
    }

    @ParameterizedTest
    @MethodSource("refused")
    void refusesWhatQemuImgRefuses(List<String> args) throws IOException {
        Path[] d = dirs();
        Qimg.Result[] r = both(d[0], d[1], args);
        assertThat(r[0].exitCode()).as(r[0].err()).isEqualTo(1);
        assertThat(r[1].exitCode()).isEqualTo(1);
        // The same Formatting line when qemu-img got as far as printing it, and the same reason.
        assertThat(r[1].out()).isEqualTo(r[0].out());
        String reason = r[0].err().lines().findFirst().orElseThrow().replaceFirst("^qemu-img: (img\\.qcow2: )?", "");
        assertThat(r[1].err().lines().toList()).hasSize(1);
        assertThat(r[1].err()).startsWith("qimg: " + reason.replace("(use version=v3 or greater)",
                "(use compat=1.1 or greater)"));
    }

    @Test
    void qemuImgInfoSeesTheOptions() throws IOException {
        Path image = dir.resolve("img.qcow2");
        Path data = dir.resolve("img.data");
        Qimg.Result r = Qimg.run("create", "-f", "qcow2", "-o", "cluster_size=16k,extended_l2=on,compression_type=zstd,"
                + "refcount_bits=4,lazy_refcounts=on,data_file=" + data, image.toString(), "5M");
        assertThat(r.exitCode()).as(r.err()).isZero();
        JsonNode info = JSON.readTree(Tools.run("qemu-img", "info", "--output=json", image.toString()));
        assertThat(info.get("virtual-size").asLong()).isEqualTo(5 << 20);
        assertThat(info.get("cluster-size").asLong()).isEqualTo(16384);
        JsonNode qcow2 = info.get("format-specific").get("data");
        assertThat(qcow2.get("compat").asText()).isEqualTo("1.1");
        assertThat(qcow2.get("extended-l2").asBoolean()).isTrue();
        assertThat(qcow2.get("compression-type").asText()).isEqualTo("zstd");
        assertThat(qcow2.get("refcount-bits").asInt()).isEqualTo(4);
        assertThat(qcow2.get("lazy-refcounts").asBoolean()).isTrue();
        assertThat(qcow2.get("data-file").asText()).isEqualTo(data.toString());
        assertThat(Files.size(data)).isEqualTo(5 << 20);

        Path overlay = dir.resolve("overlay.qcow2");
        r = Qimg.run("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "img.qcow2", "-F", "qcow2", overlay.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        info = JSON.readTree(Tools.run("qemu-img", "info", "--output=json", overlay.toString()));
        assertThat(info.get("virtual-size").asLong()).isEqualTo(5 << 20);
        assertThat(info.get("backing-filename").asText()).isEqualTo("img.qcow2");
        assertThat(info.get("backing-filename-format").asText()).isEqualTo("qcow2");
        assertThat(info.get("format-specific").get("data").get("compat").asText()).isEqualTo("0.10");
    }

    static Stream<Arguments> writable() {
        return Stream.of(Arguments.of("compat=0.10"), Arguments.of("cluster_size=512,refcount_bits=1"),
                Arguments.of("extended_l2=on,preallocation=metadata"), Arguments.of("refcount_bits=64,cluster_size=4k"),
                Arguments.of("preallocation=falloc,compression_type=zstd"), Arguments.of("cluster_size=2M,lazy_refcounts=on"),
                Arguments.of("compression_type=zstd,extended_l2=on,cluster_size=32k"));
    }

    /** qemu-io writes an image qimg made; qemu-img check and qimg check find it clean, alike. */
    @ParameterizedTest
    @MethodSource("writable")
    void takesQemuIoWritesAndChecksClean(String options) throws IOException {
        Path image = dir.resolve("w.qcow2");
        Qimg.Result r = Qimg.run("create", "-q", "-f", "qcow2", "-o", options, image.toString(), "8M");
        assertThat(r.exitCode()).as(r.err()).isZero();
        Corpus.io(image, "write -P 0x5a 0 96k", "write -z 1M 64k", "write -P 0x5b 1536k 4k", "discard 64k 32k",
                "write -P 0x5c 8384512 512");
        if (!options.contains("preallocation")) {
            // QEMU compresses only into clusters not allocated yet.
            Corpus.io(image, "write -c -P 0x11 4M 2M");
        }
        Tools.Result qemu = Tools.exec(null, List.of("qemu-img", "check", "--output=json", image.toString()));
        assertThat(qemu.exitCode()).as(qemu.stderr()).isZero();
        Qimg.Result ours = Qimg.run("check", "--output=json", image.toString());
        assertThat(ours.exitCode()).as(ours.err()).isZero();
        assertThat(ours.out()).isEqualTo(qemu.stdout());
    }
}
