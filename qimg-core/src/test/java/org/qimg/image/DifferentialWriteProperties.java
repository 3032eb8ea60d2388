package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.QemuMap;
import org.qimg.testing.Tools;

/**
 * The same random workload runs through qemu-io on one copy of an image and through qimg on another;
 * afterwards the copies read the same, qimg's passes `qemu-img check`, and where qemu leaves a hole
 * qimg leaves one too.
 */
class DifferentialWriteProperties {
    /** Images written to: every qcow2 variant of the corpus whose files can be copied beside it. */
    static final List<String> IMAGES = List.of("v3-64k-mixed", "v2-64k", "v3-512b", "v3-4k", "v3-2m", "ext-64k",
            "ext-16k", "ext-2m", "compressed-zlib", "compressed-zstd", "compressed-ext", "chain-3", "chain-2",
            "short-backing", "long-backing", "mid-short", "raw-backing", "raw-odd-backing", "ext-over-backing",
            "relative-backing", "probed-backing", "chain-mixed", "snapshots", "bitmaps", "refcount1", "refcount8",
            "refcount64", "prealloc-metadata", "prealloc-falloc", "prealloc-full", "lazy-refcounts", "odd-size",
            "untouched", "raw");

    sealed interface Op permits Write, Zero, Discard, Flush {
        String qemuIo();

        void apply(BlockDevice device) throws IOException;
    }

    record Write(long offset, int length, int pattern) implements Op {
        public String qemuIo() {
            return "write -P " + pattern + " " + offset + " " + length;
        }

        public void apply(BlockDevice d) throws IOException {
            byte[] b = new byte[length];
            Arrays.fill(b, (byte) pattern);
            d.write(offset, ByteBuffer.wrap(b));
        }
    }

    record Zero(long offset, int length, boolean unmap) implements Op {
        public String qemuIo() {
            return "write -z " + (unmap ? "-u " : "") + offset + " " + length;
        }

        public void apply(BlockDevice d) throws IOException {
            d.writeZeroes(offset, length, unmap);
        }
    }

    record Discard(long offset, int length) implements Op {
        public String qemuIo() {
            return "discard " + offset + " " + length;
        }

        public void apply(BlockDevice d) throws IOException {
            d.discard(offset, length);
        }
    }

    record Flush() implements Op {
        public String qemuIo() {
            return "flush";
        }

        public void apply(BlockDevice d) throws IOException {
            d.flush();
        }
    }

    record Workload(String image, List<Op> ops) {
    }

    @Provide
    Arbitrary<Workload> workloads() {
        return Arbitraries.of(IMAGES).flatMap(name -> {
            CorpusImage image = Corpus.get().image(name);
            long size;
            try (BlockDevice d = image.open()) {
                size = d.size();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            // Offsets near interesting places: 0, cluster and subcluster edges, the end.
            Arbitrary<Long> offsets = Arbitraries.oneOf(
                    Arbitraries.longs().between(0, size - 1).map(o -> o / 512 * 512),
                    Arbitraries.longs().between(0, size - 1),
                    Arbitraries.of(0L, 65536L, 2048L, 4096L, 1048576L, size - 512, size - 65536).filter(o -> o >= 0 && o < size));
            Arbitrary<Integer> lengths = Arbitraries.oneOf(Arbitraries.integers().between(1, 200_000),
                    Arbitraries.of(512, 2048, 4096, 65536, 131072, 2 << 20));
            Arbitrary<Op> op = Combinators.combine(Arbitraries.integers().between(0, 9), offsets, lengths,
                    Arbitraries.integers().between(1, 255), Arbitraries.of(true, false)).as((kind, off, len, pat, unmap) -> {
                        int n = (int) Math.max(1, Math.min(len, size - off));
                        return switch (kind) {
                            case 0, 1, 2, 3, 4 -> new Write(off, n, pat);
                            case 5, 6 -> new Zero(off, n, unmap);
                            case 7, 8 -> new Discard(off, n);
                            default -> new Flush();
                        };
                    });
            return op.list().ofMinSize(1).ofMaxSize(12).map(ops -> new Workload(name, ops));
        });
    }

    @Property(tries = 60)
    void qimgWritesWhatQemuWrites(@ForAll("workloads") Workload w) throws IOException {
        CorpusImage image = Corpus.get().image(w.image());
        Path dir = image.path().getParent();
        String base = image.path().getFileName().toString();
        String suffix = image.format().equals("raw") ? ".raw" : ".qcow2";
        Path theirs = dir.resolve("diff-qemu-" + base + suffix);
        Path ours = dir.resolve("diff-qimg-" + base + suffix);
        Files.copy(image.path(), theirs, StandardCopyOption.REPLACE_EXISTING);
        Files.copy(image.path(), ours, StandardCopyOption.REPLACE_EXISTING);
        try {
            List<String> commands = new ArrayList<>();
            for (Op op : w.ops()) {
                commands.add(op.qemuIo());
            }
            Corpus.ioFmt(theirs, image.format(), commands.toArray(String[]::new));
            try (BlockDevice device = Images.open(ours.toString(),
                    OpenOptions.defaults().withFormat(image.format()).writable())) {
                for (Op op : w.ops()) {
                    op.apply(device);
                }
            }
            Tools.Result compare = Tools.exec(null, List.of("qemu-img", "compare", "-f", image.format(), "-F",
                    image.format(), theirs.toString(), ours.toString()));
            assertThat(compare.exitCode()).as("qemu-img compare: %s%s", compare.stdout(), compare.stderr()).isZero();
            if (image.format().equals("qcow2")) {
                Tools.Result check = Tools.exec(null, List.of("qemu-img", "check", ours.toString()));
                assertThat(check.exitCode()).as("qemu-img check: %s%s", check.stdout(), check.stderr()).isZero();
            }
            List<QemuMap.Entry> theirMap = QemuMap.of(new CorpusImage("theirs", theirs, image.format()));
            try (BlockDevice device = Images.open(ours.toString(), OpenOptions.defaults().withFormat(image.format()))) {
                for (QemuMap.Entry hole : theirMap) {
                    if (!hole.zero() || hole.length() == 0 || image.format().equals("raw")) {
                        continue;
                    }
                    // Whole clusters qemu leaves as holes are holes in qimg's copy too.
                    long cluster = 1L << 16;
                    long from = (hole.start() + cluster - 1) / cluster * cluster;
                    long to = hole.end() / cluster * cluster;
                    if (from < to) {
                        assertThat(device.seekData(from).orElse(device.size())).as("hole [%d, %d)", from, to)
                                .isGreaterThanOrEqualTo(to);
                    }
                }
            }
        } finally {
            Files.deleteIfExists(theirs);
            Files.deleteIfExists(ours);
        }
    }
}
