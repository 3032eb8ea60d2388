package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/** Table moves and size changes: refcount-table growth, L1 growth, shrink over holes only. */
class WriteEdgeTest {
    @TempDir
    Path dir;

    private Path create(String name, String size, String options) {
        Path p = dir.resolve(name);
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", options, p.toString(), size);
        return p;
    }

    private static void assertClean(Path image) {
        Tools.Result check = Tools.exec(null, List.of("qemu-img", "check", image.toString()));
        assertThat(check.exitCode()).as(check.stdout() + check.stderr()).isZero();
    }

    private static byte[] filled(int length, int value) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void refcountTableGrowsWithSmallClusters() throws Exception {
        // 512-byte clusters with 16-bit refcounts: one refcount block covers 128 KiB of file and the
        // first table cluster 8 MiB, so 24 MiB of data moves the table twice.
        Path image = create("small.qcow2", "64M", "cluster_size=512");
        try (BlockDevice d = Images.openWritable(image.toString())) {
            for (int i = 0; i < 24; i++) {
                d.write((long) i << 20, ByteBuffer.wrap(filled(1 << 20, i + 1)));
            }
        }
        assertClean(image);
        Tools.run("qemu-io", "-c", "read -P 24 23M 1M", "-c", "read -P 1 0 1M", image.toString());
        try (BlockDevice d = Images.open(image.toString())) {
            ByteBuffer b = ByteBuffer.allocate(1 << 20);
            d.read(7L << 20, b);
            assertThat(b.array()).containsOnly((byte) 8);
        }
    }

    @Test
    void growingPastTheL1TableMovesIt() throws Exception {
        Path image = create("grow.qcow2", "1M", "cluster_size=65536");
        Corpus.io(image, "write -P 3 0 64k");
        try (BlockDevice d = Images.openWritable(image.toString())) {
            d.resize(2L << 40);
            d.write((2L << 40) - 65536, ByteBuffer.wrap(filled(65536, 9)));
            d.write(1L << 40, ByteBuffer.wrap(filled(4096, 7)));
        }
        assertClean(image);
        Tools.run("qemu-io", "-c", "read -P 3 0 64k", "-c", "read -P 9 " + ((2L << 40) - 65536) + " 64k", "-c", "read -P 7 1T 4k",
                image.toString());
        assertThat(Tools.run("qemu-img", "info", image.toString())).contains("2 TiB");
    }

    @Test
    void shrinkCutsOnlyHoles() throws Exception {
        Path image = create("shrink.qcow2", "8M", "cluster_size=65536");
        Corpus.io(image, "write -P 1 0 1M", "write -z 6M 64k", "write -P 2 7M 64k", "discard 7M 64k");
        try (BlockDevice d = Images.openWritable(image.toString())) {
            assertThatThrownBy(() -> d.resize(512 << 10)).isInstanceOf(ImageException.class)
                    .hasMessageContaining("holds data");
            d.resize(2 << 20);
            assertThat(d.size()).isEqualTo(2 << 20);
        }
        assertClean(image);
        Tools.run("qemu-io", "-c", "read -P 1 0 1M", image.toString());
    }

    @Test
    void writesToAnImageWithSnapshotsKeepTheSnapshots() throws Exception {
        Path image = create("snap.qcow2", "4M", "cluster_size=65536");
        Corpus.io(image, "write -P 1 0 1M");
        Tools.run("qemu-img", "snapshot", "-c", "s1", image.toString());
        try (BlockDevice d = Images.openWritable(image.toString())) {
            d.write(4096, ByteBuffer.wrap(filled(4096, 2)));
            d.writeZeroes(65536, 65536, true);
            d.discard(131072, 65536);
        }
        assertClean(image);
        Tools.run("qemu-io", "-c", "read -P 1 0 4k", "-c", "read -P 2 4k 4k", "-c", "read -P 0 64k 128k",
                image.toString());
        Tools.run("qemu-img", "snapshot", "-a", "s1", image.toString());
        Tools.run("qemu-io", "-c", "read -P 1 0 1M", image.toString());
        assertClean(image);
    }

    @Test
    void readOnlyDevicesRefuseWrites() throws Exception {
        Path image = create("ro.qcow2", "1M", "cluster_size=65536");
        try (BlockDevice d = Images.open(image.toString())) {
            assertThat(d.isReadOnly()).isTrue();
            assertThatThrownBy(() -> d.write(0, ByteBuffer.allocate(1))).isInstanceOf(ImageException.class)
                    .hasMessageContaining("read-only");
        }
        try (BlockDevice d = Images.openWritable(image.toString())) {
            assertThatThrownBy(() -> d.write(1 << 20, ByteBuffer.allocate(1))).isInstanceOf(ImageException.class)
                    .hasMessageContaining("outside");
        }
    }
}
