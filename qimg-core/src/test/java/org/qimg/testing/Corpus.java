package org.qimg.testing;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/**
 * The test corpus: images of every variant qimg reads, made by qemu-img and qemu-io at test time in
 * a temporary folder, once per test JVM. Each image's recipe is a few lines below.
 */
public final class Corpus {
    private static Corpus instance;

    private final Path dir;
    private final List<CorpusImage> images = new ArrayList<>();

    private Corpus(Path dir) {
        this.dir = dir;
    }

    /** The corpus, built on first use. */
    public static synchronized Corpus get() {
        if (instance == null) {
            try {
                Path dir = Files.createTempDirectory("qimg-corpus-");
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
                Corpus corpus = new Corpus(dir);
                corpus.build();
                instance = corpus;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return instance;
    }

    public List<CorpusImage> images() {
        return List.copyOf(images);
    }

    public CorpusImage image(String name) {
        return images.stream().filter(i -> i.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no corpus image " + name));
    }

    public Path dir() {
        return dir;
    }

    private void build() throws IOException {
        // Single qcow2 images of every shape.
        Path p = qcow2("v3-64k-mixed", "8M");
        io(p, "write -P 0x11 0 64k", "write -P 0x22 192k 100k", "write -z 1M 128k", "write -P 0x33 2M 64k",
                "discard 2M 64k", "write -P 0x44 3145728 1k", "write -P 0x55 8323072 64k", "write -z -u 4M 64k");
        add("v3-64k-mixed", p);

        p = qcow2("v2-64k", "8M", "compat=0.10");
        io(p, "write -P 0x11 0 64k", "write -P 0x22 192k 100k", "write -z 1M 128k", "write -P 0x33 2M 64k",
                "discard 2M 64k", "write -P 0x44 5M 4k");
        add("v2-64k", p);

        p = qcow2("v3-512b", "2M", "cluster_size=512");
        io(p, "write -P 0x01 0 512", "write -P 0x02 4k 3k", "write -z 64k 1k", "write -P 0x03 100k 32k",
                "write -P 0x04 1M 512", "discard 101k 2k", "write -P 0x05 2096640 512");
        add("v3-512b", p);

        p = qcow2("v3-4k", "4M", "cluster_size=4k");
        io(p, "write -P 0x01 0 4k", "write -P 0x02 10k 3k", "write -z 64k 8k", "write -P 0x03 2M 256k",
                "discard 2100k 8k");
        add("v3-4k", p);

        p = qcow2("v3-2m", "64M", "cluster_size=2M");
        io(p, "write -P 0x01 0 4k", "write -P 0x02 5M 3M", "write -z 16M 2M", "write -P 0x03 62M 2M");
        add("v3-2m", p);

        p = qcow2("ext-64k", "8M", "extended_l2=on");
        io(p, "write -P 0x01 4k 2k", "write -z 16k 4k", "write -P 0x02 1M 64k", "write -P 0x03 2M 6k",
                "discard 2M 2k", "write -z 3M 64k", "write -P 0x04 4094k 4k", "write -P 0x05 5M 2k",
                "write -z 5M 2k");
        add("ext-64k", p);

        p = qcow2("ext-16k", "2M", "extended_l2=on,cluster_size=16k");
        io(p, "write -P 0x01 512 512", "write -P 0x02 20k 1536", "write -z 40k 2k", "write -P 0x03 100k 64k");
        add("ext-16k", p);

        p = qcow2("ext-2m", "16M", "extended_l2=on,cluster_size=2M");
        io(p, "write -P 0x01 0 64k", "write -P 0x02 200k 300k", "write -z 3M 128k", "write -P 0x03 4M 2M",
                "discard 4M 64k");
        add("ext-2m", p);

        // Compressed clusters, zlib and zstd, mixed with normal and zero clusters.
        Path source = rawSource("compress-src.raw", 4 << 20);
        for (String type : new String[] {"zlib", "zstd"}) {
            p = dir.resolve("compressed-" + type + ".qcow2");
            Tools.run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=" + type,
                    source.toString(), p.toString());
            io(p, "write -P 0x66 1M 64k", "write -z 2M 64k", "discard 3M 128k");
            add("compressed-" + type, p);
        }
        p = dir.resolve("compressed-ext.qcow2");
        Tools.run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on",
                source.toString(), p.toString());
        io(p, "write -P 0x66 1M 4k", "write -z 2M 8k");
        add("compressed-ext", p);

        // Backing chains.
        Path base = qcow2("chain-base", "4M");
        io(base, "write -P 0xb1 0 64k", "write -z 128k 64k", "write -P 0xb2 1M 64k", "write -P 0xb3 3M 1M");
        Path mid = overlay("chain-mid", base, "qcow2", "6M");
        io(mid, "write -P 0xc1 64k 64k", "write -P 0xc2 3584k 64k", "write -P 0xc3 5M 64k");
        Path top = overlay("chain-top", mid, "qcow2", "6M");
        io(top, "write -P 0xd1 0 4k", "write -z 1M 64k", "discard 3M 64k", "write -P 0xd2 5M 4k");
        add("chain-base", base);
        add("chain-2", mid);
        add("chain-3", top);

        Path shortBase = qcow2("short-base", "2M");
        io(shortBase, "write -P 0x71 0 1M", "write -P 0x72 1984k 64k");
        Path shortTop = overlay("short-top", shortBase, "qcow2", "6M");
        io(shortTop, "write -P 0x73 1M 64k", "write -P 0x74 4M 64k");
        add("short-backing", shortTop);

        Path longBase = qcow2("long-base", "8M");
        io(longBase, "write -P 0x81 0 64k", "write -P 0x82 3M 1M", "write -P 0x83 7M 1M");
        Path longTop = overlay("long-top", longBase, "qcow2", "4M");
        io(longTop, "write -P 0x84 64k 64k");
        add("long-backing", longTop);

        Path midShortBase = qcow2("midshort-base", "6M");
        io(midShortBase, "write -P 0x91 0 6M");
        Path midShort = overlay("midshort-mid", midShortBase, "qcow2", "2M");
        io(midShort, "write -P 0x92 1M 64k");
        Path midShortTop = overlay("midshort-top", midShort, "qcow2", "6M");
        io(midShortTop, "write -P 0x93 5M 64k");
        add("mid-short", midShortTop);

        Path rawBase = dir.resolve("raw-base.raw");
        Tools.run("qemu-img", "create", "-q", "-f", "raw", rawBase.toString(), "4M");
        ioFmt(rawBase, "raw", "write -P 0xa1 1M 64k", "write -P 0xa2 3M 100k");
        Path rawTop = overlay("raw-top", rawBase, "raw", "6M");
        io(rawTop, "write -P 0xa3 1M 4k", "write -z 3M 64k");
        add("raw-backing", rawTop);

        Path oddRaw = dir.resolve("odd.raw");
        byte[] odd = new byte[1000];
        new Random(7).nextBytes(odd);
        Files.write(oddRaw, odd);
        Path oddTop = overlay("odd-top", oddRaw, "raw", "64k");
        add("raw-odd-backing", oddTop);
        add("raw-odd", oddRaw);

        Path extBase = qcow2("extb-base", "4M");
        io(extBase, "write -P 0xe1 0 4M");
        Path extTop = overlay("extb-top", extBase, "qcow2", "4M", "extended_l2=on");
        io(extTop, "write -P 0xe2 4k 2k", "write -z 16k 4k", "write -P 0xe3 1M 40k", "discard 2M 8k");
        add("ext-over-backing", extTop);

        Files.createDirectories(dir.resolve("bases"));
        Files.createDirectories(dir.resolve("tops"));
        Path relBase = dir.resolve("bases/rel-base.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", relBase.toString(), "2M");
        io(relBase, "write -P 0x61 0 1M");
        Path relTop = dir.resolve("tops/rel-top.qcow2");
        Tools.run(dir.resolve("tops"), "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../bases/rel-base.qcow2",
                "-F", "qcow2", "rel-top.qcow2", "2M");
        io(relTop, "write -P 0x62 64k 64k");
        add("relative-backing", relTop);

        Path probeBase = qcow2("probe-base", "2M");
        io(probeBase, "write -P 0x51 0 128k");
        Path probeTop = overlay("probe-top", probeBase, "qcow2", "2M");
        io(probeTop, "write -P 0x52 64k 4k");
        dropBackingFormat(probeTop);
        add("probed-backing", probeTop);

        Path mixedBottom = dir.resolve("mixed-bottom.raw");
        Tools.run("qemu-img", "create", "-q", "-f", "raw", mixedBottom.toString(), "8M");
        ioFmt(mixedBottom, "raw", "write -P 0x41 0 8M");
        Path mixedMid = dir.resolve("mixed-mid.qcow2");
        Path mixedSrc = rawSource("mixed-src.raw", 6 << 20);
        Tools.run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd",
                "-B", mixedBottom.toString(), "-F", "raw", mixedSrc.toString(), mixedMid.toString());
        Path mixedTop = overlay("mixed-top", mixedMid, "qcow2", "8M", "extended_l2=on");
        io(mixedTop, "write -P 0x42 10k 2k", "write -z 1M 64k", "discard 5M 2M");
        add("chain-mixed", mixedTop);

        // External data files, snapshots, bitmaps, refcount widths, preallocation.
        p = qcow2("data-file", "4M", "data_file=" + dir.resolve("data-file.data"));
        io(p, "write -P 0x31 0 64k", "write -P 0x32 1M 128k", "write -z 2M 64k", "discard 1M 64k");
        add("data-file", p);
        p = qcow2("data-file-raw", "4M", "data_file=" + dir.resolve("data-file-raw.data") + ",data_file_raw=on");
        io(p, "write -P 0x33 0 64k", "write -P 0x34 3M 64k");
        add("data-file-raw", p);

        p = qcow2("snapshots", "4M");
        io(p, "write -P 0x21 0 1M");
        Tools.run("qemu-img", "snapshot", "-c", "s1", p.toString());
        io(p, "write -P 0x22 64k 64k", "discard 512k 128k", "write -P 0x23 2M 64k");
        Tools.run("qemu-img", "snapshot", "-c", "s2", p.toString());
        io(p, "write -z 0 64k");
        add("snapshots", p);

        p = qcow2("bitmaps", "4M");
        Tools.run("qemu-img", "bitmap", "--add", p.toString(), "b0");
        io(p, "write -P 0x24 0 64k", "write -P 0x25 1M 4k");
        add("bitmaps", p);

        for (String bits : new String[] {"1", "8", "64"}) {
            p = qcow2("refcount" + bits, "4M", "refcount_bits=" + bits);
            io(p, "write -P 0x26 0 64k", "write -z 1M 64k", "write -P 0x27 2M 4k");
            add("refcount" + bits, p);
        }

        for (String mode : new String[] {"metadata", "falloc", "full"}) {
            p = qcow2("prealloc-" + mode, "4M", "preallocation=" + mode);
            io(p, "write -P 0x28 64k 64k", "write -z 1M 64k", "write -P 0x29 4032k 64k");
            add("prealloc-" + mode, p);
        }

        p = qcow2("lazy-refcounts", "4M", "lazy_refcounts=on");
        io(p, "write -P 0x2a 0 64k");
        add("lazy-refcounts", p);

        p = qcow2("empty", "0");
        add("empty", p);
        p = qcow2("odd-size", "1049088");
        io(p, "write -P 0x2b 1048576 512");
        add("odd-size", p);
        p = qcow2("untouched", "16M");
        add("untouched", p);

        p = qcow2("sparse-1t", "1T");
        io(p, "write -P 0x2c 0 64k", "write -P 0x2d 300G 64k", "write -z 512G 64k", "write -P 0x2e 1073741758k 64k");
        add("sparse-1t", p);

        Path raw = dir.resolve("sparse.raw");
        Tools.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), "8M");
        ioFmt(raw, "raw", "write -P 0x2f 1M 64k", "write -P 0x30 5M 4k");
        add("raw", raw);

        settle(dir);
    }

    /**
     * Settles the host's view of the files. QEMU allocates clusters with fallocate, which leaves
     * unwritten extents, and ext4 reports an unwritten extent as data once its pages sit in the page
     * cache: any reader (QEMU's own readahead included) changes later lseek(SEEK_DATA) answers, and
     * with them the maps of images QEMU takes for metadata-preallocated. Writing back and reading every
     * file once gives every later reader the same answers.
     */
    public static void settle(Path dir) throws IOException {
        Tools.run("sync");
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                try (var in = Files.newInputStream(f)) {
                    in.transferTo(java.io.OutputStream.nullOutputStream());
                }
            }
        }
    }

    private void add(String name, Path path) {
        String format = path.toString().endsWith(".raw") ? "raw" : "qcow2";
        images.add(new CorpusImage(name, path, format));
    }

    private Path qcow2(String name, String size, String... options) {
        Path p = dir.resolve(name + ".qcow2");
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", "qcow2"));
        for (String o : options) {
            cmd.add("-o");
            cmd.add(o);
        }
        cmd.add(p.toString());
        cmd.add(size);
        Tools.run(cmd.toArray(String[]::new));
        return p;
    }

    private Path overlay(String name, Path backing, String backingFormat, String size, String... options) {
        Path p = dir.resolve(name + ".qcow2");
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-b",
                backing.toString(), "-F", backingFormat));
        for (String o : options) {
            cmd.add("-o");
            cmd.add(o);
        }
        cmd.add(p.toString());
        cmd.add(size);
        Tools.run(cmd.toArray(String[]::new));
        return p;
    }

    /** Runs qemu-io commands on a qcow2 image. */
    public static void io(Path image, String... commands) {
        ioFmt(image, "qcow2", commands);
    }

    public static void ioFmt(Path image, String format, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", format));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(image.toString());
        String out = Tools.run(cmd.toArray(String[]::new));
        if (out.contains("error") || out.contains("failed")) {
            throw new AssertionError("qemu-io on " + image + ": " + out);
        }
    }

    /** A raw file with random (incompressible) clusters, patterned clusters and holes. */
    private Path rawSource(String name, int size) throws IOException {
        Path p = dir.resolve(name);
        Random random = new Random(name.hashCode());
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
            byte[] cluster = new byte[65536];
            for (int c = 0; c < size / 65536; c++) {
                switch (c % 5) {
                    case 0 -> random.nextBytes(cluster);
                    case 1, 3 -> java.util.Arrays.fill(cluster, (byte) (c * 7));
                    case 2 -> {
                        continue; // hole
                    }
                    default -> {
                        random.nextBytes(cluster);
                        java.util.Arrays.fill(cluster, 0, 60000, (byte) 3);
                    }
                }
                f.seek((long) c * 65536);
                f.write(cluster);
            }
        }
        return p;
    }

    /** Turns the backing-format header extension into an unknown one, so readers must probe the backing. */
    private static void dropBackingFormat(Path image) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(100);
            int headerLength = f.readInt();
            long at = headerLength;
            while (true) {
                f.seek(at);
                int type = f.readInt();
                int length = f.readInt();
                if (type == 0) {
                    throw new AssertionError("no backing format extension in " + image);
                }
                if (type == 0xE2792ACA) {
                    f.seek(at);
                    f.writeInt(0x7AB1E000);
                    return;
                }
                at += 8 + ((length + 7) & ~7);
            }
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // best effort at JVM exit
        }
    }

    /** Reads the whole device content of a test image through qemu-img convert. */
    public static byte[] qemuRawContent(CorpusImage image, Path scratch) throws IOException {
        Path out = scratch.resolve(image.name() + ".qemu.raw");
        Tools.run("qemu-img", "convert", "-f", image.format(), "-O", "raw", image.path().toString(), out.toString());
        byte[] bytes = Files.readAllBytes(out);
        Files.delete(out);
        return bytes;
    }

}
