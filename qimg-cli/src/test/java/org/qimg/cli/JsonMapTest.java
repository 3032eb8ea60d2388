package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.ImageException;
import org.qimg.Images;

/**
 * The JSON map walked by several threads prints what one walk prints, and what qemu-img prints,
 * also where chunk borders cut through extents that must be merged.
 */
class JsonMapTest {
    private static final long GIB = 1L << 30;

    @TempDir
    static Path dir;
    static Path image;

    static String run(String... command) throws IOException, InterruptedException {
        return run(0, command);
    }

    static String run(int exitCode, String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(String.join(" ", command)).isEqualTo(exitCode);
        return out;
    }

    @BeforeAll
    static void makeImage() throws Exception {
        image = dir.resolve("big.qcow2");
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", image.toString(), "40G");
        // Across each of the first GiB borders: two data clusters written at once (host-contiguous,
        // one extent), then zero clusters, then nothing, in turn; and data at both ends.
        List<String> command = new ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
        for (int n = 1; n <= 12; n++) {
            long at = n * GIB - 65536;
            switch (n % 3) {
                case 0 -> command.addAll(List.of("-c", "write -q -P " + n + " " + at + " 131072"));
                case 1 -> command.addAll(List.of("-c", "write -q -z " + at + " 131072"));
                default -> { }
            }
        }
        command.addAll(List.of("-c", "write -q -P 99 0 65536", "-c", "write -q -P 98 " + (40 * GIB - 65536) + " 65536",
                "-c", "write -q -P 97 " + 20 * GIB + " 65536"));
        command.add(image.toString());
        run(command.toArray(String[]::new));
    }

    static String print(Path path, long from, long to, int threads) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (BlockDevice device = Images.open(path.toString())) {
            JsonMap.print(device, from, Math.min(to, device.size()), out, threads);
        }
        return out.toString(StandardCharsets.US_ASCII);
    }

    @Test
    void threadsPrintWhatQemuImgPrints() throws Exception {
        String qemu = run("qemu-img", "map", "--output=json", image.toString());
        for (int threads = 1; threads <= 5; threads++) {
            assertThat(print(image, 0, Long.MAX_VALUE, threads)).as("threads " + threads).isEqualTo(qemu);
        }
    }

    @Test
    void unalignedRangesToo() throws Exception {
        long from = GIB / 2 + 4096;
        long length = 33 * GIB + 12345;
        String qemu = run("qemu-img", "map", "--output=json", "-s", Long.toString(from), "-l",
                Long.toString(length), image.toString());
        for (int threads = 1; threads <= 3; threads++) {
            assertThat(print(image, from, from + length, threads)).as("threads " + threads).isEqualTo(qemu);
        }
    }

    @Test
    void anEmptyRangePrintsOneEntryOfLengthZero() throws Exception {
        String qemu = run("qemu-img", "map", "--output=json", "-s", "50G", image.toString());
        assertThat(print(image, 50 * GIB, 40 * GIB, 2)).isEqualTo(qemu);
    }

    @Test
    void aFailureInALaterChunkPrintsWhatOneWalkPrintsBeforeIt() throws Exception {
        Path broken = dir.resolve("broken.qcow2");
        Files.copy(image, broken);
        // Make the L2 entry of guest cluster 20 GiB (allocated) point at an unaligned host offset.
        try (RandomAccessFile file = new RandomAccessFile(broken.toFile(), "rw")) {
            file.seek(40);
            long l1 = file.readLong();
            long clusterIndex = 20 * GIB / 65536;
            file.seek(l1 + 8 * (clusterIndex / 8192));
            long l2 = file.readLong() & 0x00FF_FFFF_FFFF_FE00L;
            file.seek(l2 + 8 * (clusterIndex % 8192));
            file.writeLong((1L << 63) | 0x10200);
        }
        // qemu-img prints every extent it could finish before the failure.
        String qemu = run(1, "qemu-img", "map", "--output=json", broken.toString());
        assertThat(qemu).contains("\"start\": 12884901888");
        for (int threads = 1; threads <= 3; threads++) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            int t = threads;
            try (BlockDevice device = Images.open(broken.toString())) {
                assertThatThrownBy(() -> JsonMap.print(device, 0, device.size(), out, t))
                        .isInstanceOf(ImageException.class).hasMessageContaining("0x10200 unaligned");
            }
            assertThat(out.toString(StandardCharsets.US_ASCII)).as("threads " + threads).isEqualTo(qemu);
        }
    }
}
