package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.testing.Tools;

/**
 * {@link Qcow2Layer#readData} joins consecutive clusters that follow each other on the host into one
 * read: whatever the range, the bytes equal qemu-img's, whether the host clusters are contiguous or
 * scattered, whole or (extended L2) partly allocated, in one L2 table or across several.
 */
class Qcow2LayerReadTest {
    @TempDir
    Path dir;

    private Path image(String name, String size, String options, String... writes) {
        Path p = dir.resolve(name);
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", options, p.toString(), size);
        List<String> command = new ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
        for (String w : writes) {
            command.add("-c");
            command.add(w);
        }
        command.add(p.toString());
        Tools.run(command.toArray(String[]::new));
        return p;
    }

    private byte[] qemuRaw(Path image) throws Exception {
        Path raw = dir.resolve(image.getFileName() + ".raw");
        Tools.run("qemu-img", "convert", "-O", "raw", image.toString(), raw.toString());
        return Files.readAllBytes(raw);
    }

    /** Reads [from, to) through the top layer in one call and compares with qemu's bytes. */
    private static void assertReads(Layer layer, byte[] expected, long from, long to) throws Exception {
        ByteBuffer ours = ByteBuffer.allocate((int) (to - from));
        layer.readData(from, ours);
        assertThat(ours.position()).isEqualTo(ours.capacity());
        assertThat(ours.array()).as("[%d, %d)", from, to)
                .isEqualTo(Arrays.copyOfRange(expected, (int) from, (int) to));
    }

    @Test
    void scatteredHostClusters() throws Exception {
        // Written back to front, so guest-contiguous clusters are host-discontiguous; then a run in order.
        Path p = image("scattered.qcow2", "2M", "cluster_size=64k",
                "write -P 0x11 448k 64k", "write -P 0x12 384k 64k", "write -P 0x13 256k 128k",
                "write -P 0x14 0 256k", "write -P 0x15 512k 512k");
        byte[] expected = qemuRaw(p);
        try (BlockDevice d = Images.open(p.toString())) {
            Layer top = ((ChainDevice) d).top();
            assertReads(top, expected, 0, 1 << 20);
            assertReads(top, expected, 1000, 1000000);
            assertReads(top, expected, 300000, 300001);
            assertReads(top, expected, 65535, 65537);
            assertReads(top, expected, 512 << 10, 1 << 20);
        }
    }

    @Test
    void extendedL2JoinsOnlyWholeClusters() throws Exception {
        // Clusters 0-1 whole, cluster 2 allocated in its first half only, 3-4 whole again.
        Path p = image("ext.qcow2", "1M", "extended_l2=on,cluster_size=64k",
                "write -P 0x21 0 128k", "write -P 0x22 128k 32k", "write -P 0x23 192k 128k");
        byte[] expected = qemuRaw(p);
        try (BlockDevice d = Images.open(p.toString())) {
            Layer top = ((ChainDevice) d).top();
            assertReads(top, expected, 0, 160 << 10);
            assertReads(top, expected, 4096, 150000);
            assertReads(top, expected, 128 << 10, 160 << 10);
            assertReads(top, expected, 192 << 10, 320 << 10);
        }
    }

    @Test
    void smallClustersAcrossL2Tables() throws Exception {
        // 512-byte clusters: an L2 table maps 32 KiB, so the range spans several tables.
        Path p = image("small.qcow2", "1M", "cluster_size=512",
                "write -P 0x31 0 100k", "write -P 0x32 40k 1k");
        byte[] expected = qemuRaw(p);
        try (BlockDevice d = Images.open(p.toString())) {
            Layer top = ((ChainDevice) d).top();
            assertReads(top, expected, 0, 100 << 10);
            assertReads(top, expected, 100, 99 << 10);
            assertReads(top, expected, 32767, 32769);
        }
    }
}
