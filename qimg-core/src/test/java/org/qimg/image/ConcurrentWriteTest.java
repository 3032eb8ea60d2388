package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.testing.Tools;

/** Many threads write, zero and read at once; nothing is lost and the image stays clean. */
class ConcurrentWriteTest {
    @TempDir
    Path dir;

    @Test
    void threadsWritingDisjointRangesLoseNothing() throws Exception {
        Path image = dir.resolve("c.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096,extended_l2=off",
                image.toString(), "64M");
        int threads = 16;
        int blocksPerThread = 200;
        try (BlockDevice device = Images.openWritable(image.toString());
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                done.add(pool.submit(() -> {
                    byte[] data = new byte[3000];
                    for (int i = 0; i < blocksPerThread; i++) {
                        // Interleaved 3000-byte writes: neighbours share clusters but never bytes.
                        long offset = ((long) i * threads + thread) * 3000L;
                        Arrays.fill(data, (byte) (thread + 1));
                        device.write(offset, ByteBuffer.wrap(data));
                        if (i % 50 == 0) {
                            device.flush();
                        }
                        ByteBuffer back = ByteBuffer.allocate(3000);
                        device.read(offset, back);
                        assertThat(back.array()).containsOnly((byte) (thread + 1));
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        }
        try (BlockDevice device = Images.open(image.toString())) {
            ByteBuffer all = ByteBuffer.allocate(threads * blocksPerThread * 3000);
            device.read(0, all);
            for (int k = 0; k < threads * blocksPerThread; k++) {
                byte expected = (byte) (k % threads + 1);
                for (int j = 0; j < 3000; j++) {
                    if (all.get(k * 3000 + j) != expected) {
                        throw new AssertionError("byte " + (k * 3000 + j) + " lost its write");
                    }
                }
            }
        }
        assertThat(Tools.exec(null, List.of("qemu-img", "check", image.toString())).exitCode()).isZero();
    }
    @Test
    void overlappingInPlaceWritesNeverInterleave() throws Exception {
        Path image = dir.resolve("o.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", image.toString(), "1M");
        // Clusters 0-3 allocated in reverse order, so that a write across them goes to four host
        // runs: an in-place write of several pwrites, which the gate must keep whole.
        for (int c = 3; c >= 0; c--) {
            Tools.run("qemu-io", "-f", "qcow2", "-c", "write -q -P 1 " + c * 4096 + " 4096", image.toString());
        }
        int threads = 8;
        int rounds = 150;
        long start = 1000;
        int length = 3 * 4096 + 2000;
        try (BlockDevice device = Images.openWritable(image.toString());
             ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            for (int round = 0; round < rounds; round++) {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    byte pattern = (byte) (round * threads + t + 2);
                    done.add(pool.submit(() -> {
                        byte[] data = new byte[length];
                        Arrays.fill(data, pattern);
                        device.write(start, ByteBuffer.wrap(data));
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get();
                }
                ByteBuffer back = ByteBuffer.allocate(length);
                device.read(start, back);
                byte first = back.get(0);
                for (int j = 0; j < length; j++) {
                    if (back.get(j) != first) {
                        throw new AssertionError("round " + round + ": byte " + (start + j) + " holds " + back.get(j)
                                + " where byte " + start + " holds " + first + ": two writes interleaved");
                    }
                }
            }
        }
        assertThat(Tools.exec(null, List.of("qemu-img", "check", image.toString())).exitCode()).isZero();
    }
    /**
     * Threads overwrite, allocate, zero and discard overlapping ranges at once (in-place writes run
     * beside each other under the shared lock, everything else under the exclusive one). Afterwards
     * every sector holds zeroes or the pattern of a thread that wrote it: a write that landed in a
     * cluster after it was discarded and reused elsewhere would leave a pattern where its thread
     * never wrote. And the image stays clean.
     */
    @Test
    void mixedOperationsOnOverlappingRangesLeaveEverySectorToOneOfItsWriters() throws Exception {
        for (String clusterSize : List.of("4096", "65536")) {
            Path image = dir.resolve("m" + clusterSize + ".qcow2");
            Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + clusterSize,
                    image.toString(), "4M");
            int sectors = (4 << 20) / 512;
            java.util.concurrent.atomic.AtomicLongArray writers = new java.util.concurrent.atomic.AtomicLongArray(sectors);
            int threads = 8;
            try (BlockDevice device = Images.openWritable(image.toString());
                 ExecutorService pool = Executors.newFixedThreadPool(threads)) {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int thread = t;
                    done.add(pool.submit(() -> {
                        java.util.Random random = new java.util.Random(1234 + thread);
                        byte[] data = new byte[256 * 1024];
                        Arrays.fill(data, (byte) (thread + 1));
                        for (int op = 0; op < 400; op++) {
                            int first = random.nextInt(sectors);
                            int count = 1 + random.nextInt(Math.min(sectors - first, random.nextBoolean() ? 8 : 512));
                            long offset = first * 512L;
                            int length = count * 512;
                            switch (random.nextInt(10)) {
                                case 0 -> device.writeZeroes(offset, length, random.nextBoolean());
                                case 1 -> device.discard(offset, length);
                                case 2 -> device.flush();
                                default -> {
                                    for (int s = first; s < first + count; s++) {
                                        int sector = s;
                                        writers.getAndUpdate(sector, bits -> bits | (1L << thread));
                                    }
                                    device.write(offset, ByteBuffer.wrap(data, 0, length));
                                }
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get();
                }
            }
            try (BlockDevice device = Images.open(image.toString())) {
                ByteBuffer all = ByteBuffer.allocate(4 << 20);
                device.read(0, all);
                for (int s = 0; s < sectors; s++) {
                    byte value = all.get(s * 512);
                    for (int j = 1; j < 512; j++) {
                        if (all.get(s * 512 + j) != value) {
                            throw new AssertionError(clusterSize + ": sector " + s + " is torn");
                        }
                    }
                    if (value != 0 && (writers.get(s) & (1L << (value - 1))) == 0) {
                        throw new AssertionError(clusterSize + ": sector " + s + " holds thread " + (value - 1)
                                + "'s pattern, but that thread never wrote it");
                    }
                }
            }
            assertThat(Tools.exec(null, List.of("qemu-img", "check", image.toString())).exitCode())
                    .as(clusterSize).isZero();
        }
    }
}
