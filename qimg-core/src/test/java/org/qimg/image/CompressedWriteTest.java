package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.testing.QemuMap;
import org.qimg.testing.Tools;

/** Clusters qimg stores compressed read back in QEMU, and the image checks clean. */
class CompressedWriteTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"zlib", "zstd"})
    void qemuReadsWhatQimgCompressed(String type) throws Exception {
        Path image = dir.resolve(type + ".qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=" + type, image.toString(), "4M");
        Path expected = dir.resolve("expected.raw");
        byte[] content = new byte[4 << 20];
        Random random = new Random(5);
        try (BlockDevice d = Images.openWritable(image.toString())) {
            long unit = d.compressionUnit();
            assertThat(unit).isEqualTo(65536);
            for (int c = 0; c < 40; c++) {
                byte[] cluster = new byte[(int) unit];
                for (int i = 0; i < cluster.length; i++) {
                    cluster[i] = (byte) (c % 3 == 0 ? random.nextInt() : 'a' + random.nextInt(c % 7 + 1));
                }
                System.arraycopy(cluster, 0, content, (int) (c * unit), cluster.length);
                d.writeCompressed(c * unit, ByteBuffer.wrap(cluster));
            }
            // A partial overwrite of a compressed cluster rewrites it uncompressed.
            byte[] patch = new byte[1000];
            java.util.Arrays.fill(patch, (byte) 7);
            d.write(65536 + 100, ByteBuffer.wrap(patch));
            System.arraycopy(patch, 0, content, 65536 + 100, patch.length);
        }
        java.nio.file.Files.write(expected, content);
        assertThat(Tools.exec(null, List.of("qemu-img", "check", image.toString())).exitCode()).isZero();
        Tools.run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", expected.toString(), image.toString());
        assertThat(QemuMap.json(new org.qimg.testing.CorpusImage("c", image, "qcow2")))
                .contains("\"data\": true}"); // compressed clusters: data without an offset
    }

    /** Threads that write compressed clusters at once (compressing in parallel) leave a clean image. */
    @ParameterizedTest
    @ValueSource(strings = {"zlib", "zstd"})
    void concurrentCompressedWritesLeaveACleanImage(String type) throws Exception {
        Path image = dir.resolve(type + ".qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=" + type, image.toString(), "8M");
        byte[] content = new byte[8 << 20];
        new Random(9).nextBytes(content);
        for (int i = 0; i < content.length; i++) {
            if ((i >> 12) % 3 != 0) {
                content[i] = (byte) ('a' + (content[i] & 3)); // mostly compressible, some not
            }
        }
        try (BlockDevice d = Images.openWritable(image.toString())) {
            int unit = (int) d.compressionUnit();
            List<Thread> threads = new java.util.ArrayList<>();
            java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
            for (int t = 0; t < 4; t++) {
                int first = t;
                threads.add(Thread.ofPlatform().start(() -> {
                    try {
                        for (int c = first; c < content.length / unit; c += 4) {
                            d.writeCompressed((long) c * unit, ByteBuffer.wrap(content, c * unit, unit));
                        }
                    } catch (Throwable e) {
                        failure.set(e);
                    }
                }));
            }
            for (Thread t : threads) {
                t.join();
            }
            assertThat(failure.get()).isNull();
        }
        Path expected = dir.resolve("expected.raw");
        java.nio.file.Files.write(expected, content);
        assertThat(Tools.exec(null, List.of("qemu-img", "check", image.toString())).exitCode()).isZero();
        Tools.run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", expected.toString(), image.toString());
    }
}
