package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.BlockDevice;
import org.qimg.CreateOptions;
import org.qimg.CreateOptions.Preallocation;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/**
 * Images qimg creates are the files qemu-img 7.2 creates with the same options, byte for byte (and
 * host extent for host extent, so their maps agree), for a representative matrix of the options.
 */
class Qcow2CreatorTest {
    @TempDir
    static Path shared;

    /** One combination: qemu-img's arguments and the same thing as {@link CreateOptions}. */
    record Case(String name, List<String> qemuArgs, CreateOptions options, boolean dataFile) {
        @Override
        public String toString() {
            return name;
        }
    }

    @BeforeAll
    static void bases() throws IOException {
        Tools.run("qemu-img", "create", "-q", "-f", "raw", shared.resolve("base.raw").toString(), "3M");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", shared.resolve("base.qcow2").toString(), "5000k");
    }

    static Stream<Case> cases() {
        List<Case> c = new ArrayList<>();
        CreateOptions d = CreateOptions.ofSize(1L << 30);
        c.add(new Case("defaults-1G", List.of("1G"), d, false));
        c.add(new Case("v2-1G", List.of("-o", "compat=0.10", "1G"), d.withCompat("0.10"), false));
        c.add(new Case("empty", List.of("0"), d.withSize(0), false));
        c.add(new Case("odd-size", List.of("1000"), d.withSize(1000), false));
        c.add(new Case("512b-1G", List.of("-o", "cluster_size=512", "1G"), d.withClusterSize(512), false));
        c.add(new Case("512b-64bit-16G", List.of("-o", "cluster_size=512,refcount_bits=64", "16G"),
                d.withClusterSize(512).withRefcountBits(64).withSize(16L << 30), false));
        c.add(new Case("2m-ext-zstd-1bit-lazy", List.of("-o",
                "cluster_size=2M,extended_l2=on,compression_type=zstd,refcount_bits=1,lazy_refcounts=on", "10G"),
                d.withClusterSize(2 << 20).withExtendedL2(true).withCompressionType("zstd").withRefcountBits(1)
                        .withLazyRefcounts(true).withSize(10L << 30), false));
        c.add(new Case("4k-8bit", List.of("-o", "cluster_size=4k,refcount_bits=8", "100M"),
                d.withClusterSize(4096).withRefcountBits(8).withSize(100 << 20), false));
        c.add(new Case("backing-raw-size-of-backing", List.of("-b", "base.raw", "-F", "raw"),
                CreateOptions.overlay("base.raw", "raw"), false));
        c.add(new Case("v2-backing-qcow2", List.of("-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2", "7M"),
                d.withCompat("0.10").withBacking("base.qcow2", "qcow2").withSize(7 << 20), false));
        c.add(new Case("data-file", List.of("-o", "data_file=DATA", "100000"),
                d.withDataFile("DATA", false).withSize(100000), true));
        c.add(new Case("data-file-raw", List.of("-o", "data_file=DATA,data_file_raw=on", "1M"),
                d.withDataFile("DATA", true).withSize(1 << 20), true));
        c.add(new Case("metadata-4k", List.of("-o", "preallocation=metadata,cluster_size=4k", "20M"),
                d.withPreallocation(Preallocation.METADATA).withClusterSize(4096).withSize(20 << 20), false));
        c.add(new Case("metadata-odd", List.of("-o", "preallocation=metadata", "100000"),
                d.withPreallocation(Preallocation.METADATA).withSize(100000), false));
        c.add(new Case("metadata-512b-2bit", List.of("-o", "preallocation=metadata,cluster_size=512,refcount_bits=2",
                "3M"), d.withPreallocation(Preallocation.METADATA).withClusterSize(512).withRefcountBits(2)
                .withSize(3 << 20), false));
        c.add(new Case("metadata-ext-16k", List.of("-o", "preallocation=metadata,extended_l2=on,cluster_size=16k",
                "100000"), d.withPreallocation(Preallocation.METADATA).withExtendedL2(true).withClusterSize(16384)
                .withSize(100000), false));
        // The refcount table fills up and grows (by half again) several times during preallocation.
        c.add(new Case("metadata-512b-64bit-table-growth", List.of("-o",
                "preallocation=metadata,cluster_size=512,refcount_bits=64", "8M"),
                d.withPreallocation(Preallocation.METADATA).withClusterSize(512).withRefcountBits(64).withSize(8 << 20),
                false));
        c.add(new Case("falloc-512b-32bit", List.of("-o", "preallocation=falloc,cluster_size=512,refcount_bits=32", "16M"),
                d.withPreallocation(Preallocation.FALLOC).withClusterSize(512).withRefcountBits(32).withSize(16 << 20),
                false));
        c.add(new Case("falloc-4k", List.of("-o", "preallocation=falloc,cluster_size=4k", "20M"),
                d.withPreallocation(Preallocation.FALLOC).withClusterSize(4096).withSize(20 << 20), false));
        c.add(new Case("falloc-empty", List.of("-o", "preallocation=falloc", "0"),
                d.withPreallocation(Preallocation.FALLOC).withSize(0), false));
        c.add(new Case("falloc-1k-32bit", List.of("-o", "preallocation=falloc,cluster_size=1k,refcount_bits=32", "2M"),
                d.withPreallocation(Preallocation.FALLOC).withClusterSize(1024).withRefcountBits(32)
                        .withSize(2 << 20), false));
        c.add(new Case("full-odd", List.of("-o", "preallocation=full", "5000k"),
                d.withPreallocation(Preallocation.FULL).withSize(5000 << 10), false));
        c.add(new Case("falloc-ext-backing", List.of("-o", "preallocation=falloc,extended_l2=on", "-b", "base.qcow2",
                "-F", "qcow2", "3M"), d.withPreallocation(Preallocation.FALLOC).withExtendedL2(true)
                .withBacking("base.qcow2", "qcow2").withSize(3 << 20), false));
        c.add(new Case("metadata-data-file", List.of("-o", "preallocation=metadata,data_file=DATA", "100000"),
                d.withPreallocation(Preallocation.METADATA).withDataFile("DATA", false).withSize(100000), true));
        c.add(new Case("falloc-data-file", List.of("-o", "preallocation=falloc,data_file=DATA", "1M"),
                d.withPreallocation(Preallocation.FALLOC).withDataFile("DATA", false).withSize(1 << 20), true));
        c.add(new Case("full-data-file-ext", List.of("-o", "preallocation=full,data_file=DATA,extended_l2=on",
                "100000"), d.withPreallocation(Preallocation.FULL).withDataFile("DATA", false).withExtendedL2(true)
                .withSize(100000), true));
        return c.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void sameFileAsQemuImg(Case c, @TempDir Path dir) throws IOException {
        Path qemuDir = Files.createDirectories(dir.resolve("qemu"));
        Path qimgDir = Files.createDirectories(dir.resolve("qimg"));
        for (Path d : List.of(qemuDir, qimgDir)) {
            Files.copy(shared.resolve("base.raw"), d.resolve("base.raw"));
            Files.copy(shared.resolve("base.qcow2"), d.resolve("base.qcow2"));
        }
        // A data file name is stored as given: both images name the same absolute path, made in turn.
        Path data = dir.resolve("img.data");
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", "qcow2"));
        List<String> args = new ArrayList<>(c.qemuArgs().stream().map(a -> a.replace("DATA", data.toString())).toList());
        String size = args.get(args.size() - 1).matches("[0-9].*") ? args.remove(args.size() - 1) : null;
        cmd.addAll(args);
        cmd.add("img.qcow2");
        if (size != null) {
            cmd.add(size);
        }
        Tools.run(qemuDir, cmd.toArray(String[]::new));
        Path theirData = dir.resolve("qemu.data");
        if (c.dataFile()) {
            Files.move(data, theirData);
        }
        CreateOptions options = c.options();
        if (c.dataFile()) {
            options = options.withDataFile(data.toString(), options.dataFileRaw());
        }
        Path ours = qimgDir.resolve("img.qcow2");
        Qcow2Creator.create(ours, options);

        Path theirs = qemuDir.resolve("img.qcow2");
        assertThat(Files.size(ours)).as("file size").isEqualTo(Files.size(theirs));
        assertThat(Files.mismatch(ours, theirs)).as("first differing byte").isEqualTo(-1);
        if (c.dataFile()) {
            assertThat(Files.size(data)).as("data file size").isEqualTo(Files.size(theirData));
            assertThat(Files.mismatch(data, theirData)).isEqualTo(-1);
        }
        Corpus.settle(dir);
        // Where the files hold data and holes (st_blocks also counts the file system's extent tree, which varies).
        assertThat(dataExtents(ours)).as("host data extents").isEqualTo(dataExtents(theirs));
        if (c.dataFile()) {
            assertThat(dataExtents(data)).as("data file extents").isEqualTo(dataExtents(theirData));
        }
        assertThat(map(ours)).as("qemu-img map").isEqualTo(map(theirs));
        assertThat(info(ours)).as("qemu-img info").isEqualTo(info(theirs)).contains("\"virtual-size\": "
                + ((c.options().size() == CreateOptions.SIZE_OF_BACKING ? 3 << 20 : c.options().size() + 511) & ~511L) + ",");
        Tools.run("qemu-img", "check", ours.toString());
    }

    static Stream<org.junit.jupiter.params.provider.Arguments> badOptions() {
        CreateOptions d = CreateOptions.ofSize(1 << 20);
        return Stream.of(
                org.junit.jupiter.params.provider.Arguments.of(d.withClusterSize(1000), "Cluster size must be a power of two"),
                org.junit.jupiter.params.provider.Arguments.of(d.withClusterSize(4 << 20), "Cluster size must be a power of two"),
                org.junit.jupiter.params.provider.Arguments.of(d.withRefcountBits(3), "Refcount width must be a power of two"),
                org.junit.jupiter.params.provider.Arguments.of(d.withRefcountBits(128), "may not exceed 64 bits"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompat("0.10").withRefcountBits(8), "Different refcount widths"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompat("1.0"), "Parameter 'compat'"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompat("0.10").withLazyRefcounts(true), "Lazy refcounts"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompat("v2").withExtendedL2(true), "Extended L2 entries"),
                org.junit.jupiter.params.provider.Arguments.of(d.withExtendedL2(true).withClusterSize(8192), "at least 16384"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompressionType("lz4"), "compression_type"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompat("0.10").withCompressionType("zstd"), "Non-zlib"),
                org.junit.jupiter.params.provider.Arguments.of(d.withCompat("0.10").withDataFile("x", false), "External data files"),
                org.junit.jupiter.params.provider.Arguments.of(d.withDataFile(null, true), "data-file-raw requires data-file"),
                org.junit.jupiter.params.provider.Arguments.of(d.withBacking("b", null), "without backing format"),
                org.junit.jupiter.params.provider.Arguments.of(d.withBacking(null, "raw"), "without backing file"),
                org.junit.jupiter.params.provider.Arguments.of(d.withBacking("b", "nonsense"), "backing_fmt"),
                org.junit.jupiter.params.provider.Arguments.of(d.withBacking("b", "raw").withPreallocation(Preallocation.FULL),
                        "if extended_l2 is on"),
                org.junit.jupiter.params.provider.Arguments.of(d.withBacking("b", "raw").withDataFile("x", true),
                        "cannot be used at the same time"),
                org.junit.jupiter.params.provider.Arguments.of(d.withSize(CreateOptions.SIZE_OF_BACKING), "needs a size"),
                org.junit.jupiter.params.provider.Arguments.of(d.withSize(-5), "cannot be negative"),
                org.junit.jupiter.params.provider.Arguments.of(d.withClusterSize(512).withSize(2L << 40), "too large"),
                org.junit.jupiter.params.provider.Arguments.of(d.withBacking("/x".repeat(600), "raw").withSize(1),
                        "at most 1023"),
                org.junit.jupiter.params.provider.Arguments.of(d.withClusterSize(512).withBacking("y".repeat(400), "raw"),
                        "more than the cluster size 512"),
                org.junit.jupiter.params.provider.Arguments.of(CreateOptions.overlay("missing.qcow2", "qcow2"),
                        "Could not open backing image 'missing.qcow2'"));
    }

    @ParameterizedTest
    @MethodSource("badOptions")
    void refusesBadOptionsNamingThem(CreateOptions options, String words, @TempDir Path dir) {
        Path image = dir.resolve("bad.qcow2");
        assertThatThrownBy(() -> Qcow2Creator.create(image, options)).isInstanceOf(ImageException.class)
                .hasMessageContaining(words);
        assertThat(image).doesNotExist();
    }

    @Test
    void takesTheSizeOfItsBacking(@TempDir Path dir) throws IOException {
        Path base = dir.resolve("base.qcow2");
        Qcow2Creator.create(base, CreateOptions.ofSize(3000 << 10));
        Path top = dir.resolve("top.qcow2");
        assertThat(Qcow2Creator.create(top, CreateOptions.overlay("base.qcow2", "qcow2")).virtualSize()).isEqualTo(3000 << 10);
        try (BlockDevice device = Images.open(top.toString())) {
            assertThat(device.size()).isEqualTo(3000 << 10);
        }
    }

    /** The data ranges of a host file, as lseek(SEEK_DATA / SEEK_HOLE) reports them. */
    private static List<Long> dataExtents(Path file) throws IOException {
        List<Long> bounds = new ArrayList<>();
        try (org.qimg.host.HostFile f = org.qimg.host.HostFile.openReadOnly(file, file.toString())) {
            long at = 0;
            while (true) {
                long data = f.seekData(at);
                if (data < 0) {
                    return bounds;
                }
                long hole = f.seekHole(data);
                bounds.add(data);
                bounds.add(hole);
                at = hole;
                if (hole >= f.size()) {
                    return bounds;
                }
            }
        }
    }

    /** qemu-img info without "actual-size" (st_blocks, which counts the file system's own metadata too). */
    private static String info(Path image) {
        return Tools.run(image.getParent(), "qemu-img", "info", "-U", "--output=json", image.getFileName().toString())
                .replaceAll("\"actual-size\": \\d+,", "");
    }

    private static String map(Path image) {
        return Tools.run(image.getParent(), "qemu-img", "map", "--output=json", image.getFileName().toString());
    }
}
