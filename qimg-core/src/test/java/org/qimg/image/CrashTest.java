package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/**
 * A child process writes with periodic flushes and is killed with SIGKILL at a random moment; then
 * `qemu-img check` finds no corruption (leaks are allowed) and every block whose last write was
 * flushed before the kill reads back as written — or as a later, unflushed write to it.
 */
class CrashTest {
    private static final int KILLS = 52;
    private static final int OPS = 4000;
    private static final long SIZE = 32L << 20;

    @TempDir
    Path dir;

    @Test
    void killedWritersLeaveConsistentImagesAndKeepFlushedData() throws Exception {
        String java = ProcessHandle.current().info().command().orElseThrow();
        String classpath = System.getProperty("java.class.path");
        Random random = new Random(20261125);
        String[][] shapes = {
            {"cluster_size=65536"}, {"extended_l2=on"}, {"cluster_size=4096"}, {"compat=0.10"},
            {"refcount_bits=1,cluster_size=4096"}, {"backing"},
        };
        Path base = dir.resolve("base.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), Long.toString(SIZE));
        Corpus.io(base, "write -P 0x77 0 8M", "write -P 0x78 16M 4M");
        int corruptions = 0;
        int survivedFlushes = 0;
        for (int kill = 0; kill < KILLS; kill++) {
            Path image = dir.resolve("crash-" + kill + ".qcow2");
            String[] shape = shapes[kill % shapes.length];
            if (shape[0].equals("backing")) {
                Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2",
                        "-o", "extended_l2=on", image.toString(), Long.toString(SIZE));
            } else {
                Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", shape[0], image.toString(),
                        Long.toString(SIZE));
            }
            long seed = random.nextLong();
            Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-XX:TieredStopAtLevel=1",
                    "-cp", classpath, CrashWriter.class.getName(), image.toString(), Long.toString(seed),
                    Integer.toString(OPS)).redirectErrorStream(true).start();
            AtomicInteger lastFlushed = new AtomicInteger(-1);
            List<String> output = new ArrayList<>();
            Thread reader = Thread.ofVirtual().start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line = r.readLine(); line != null; line = r.readLine()) {
                        if (line.startsWith("F ")) {
                            lastFlushed.set(Integer.parseInt(line.substring(2)));
                        } else {
                            output.add(line);
                        }
                    }
                } catch (IOException ignored) {
                    // the child is gone
                }
            });
            // Kill once the child has flushed a random number of times (or after a time limit).
            int flushesBeforeKill = 1 + random.nextInt(40);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (lastFlushed.get() < flushesBeforeKill * 8 && child.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            Thread.sleep(random.nextInt(15));
            child.destroyForcibly();
            child.waitFor(10, TimeUnit.SECONDS);
            reader.join(5000);
            assertThat(output).as("child output").noneMatch(l -> l.contains("Exception"));
            int flushed = lastFlushed.get();
            survivedFlushes += flushed >= 0 ? 1 : 0;

            Tools.Result check = Tools.exec(null, List.of("qemu-img", "check", image.toString()));
            if (check.exitCode() != 0 && check.exitCode() != 3) {
                corruptions++;
            }
            assertThat(check.exitCode()).as("qemu-img check after kill %d (%s): %s", kill, shape[0], check.stdout())
                    .isIn(0, 3);
            long clusterSize = shape[0].contains("4096") ? 4096 : 65536;
            verifyFlushedData(image, seed, flushed, shape[0].equals("backing") ? base : null, clusterSize);
        }
        assertThat(corruptions).isZero();
        assertThat(survivedFlushes).isGreaterThanOrEqualTo(KILLS / 2);
    }

    /** Every 4 KiB block holds what the flushed prefix left, or what some later operation wrote. */
    private static void verifyFlushedData(Path image, long seed, int flushed, Path base, long clusterSize)
            throws IOException {
        Random random = new Random(seed);
        int blocks = (int) (SIZE / 4096);
        byte[] expected = new byte[blocks];
        List<Set<Byte>> later = new ArrayList<>();
        for (int b = 0; b < blocks; b++) {
            later.add(null);
        }
        if (base != null) {
            for (int b = 0; b < blocks; b++) {
                long at = (long) b * 4096;
                expected[b] = at < (8 << 20) ? (byte) 0x77 : at >= (16 << 20) && at < (20 << 20) ? (byte) 0x78 : 0;
            }
        }
        for (int i = 0; i < OPS; i++) {
            CrashWriter.Op op = CrashWriter.op(random, SIZE);
            byte value = op.kind() == 0 ? op.pattern() : 0;
            long from = op.offset();
            long to = op.offset() + op.length();
            if (op.kind() == 2) {
                // Discard acts on whole clusters only, and leaves zeroes there.
                from = (from + clusterSize - 1) / clusterSize * clusterSize;
                to = to / clusterSize * clusterSize;
            }
            for (int b = (int) (from / 4096); b < to / 4096; b++) {
                if (i <= flushed) {
                    expected[b] = value;
                } else {
                    if (later.get(b) == null) {
                        later.set(b, new HashSet<>());
                    }
                    later.get(b).add(value);
                }
            }
        }
        try (BlockDevice device = Images.open(image.toString())) {
            ByteBuffer block = ByteBuffer.allocate(4096);
            for (int b = 0; b < blocks; b++) {
                device.read((long) b * 4096, block.clear());
                byte first = block.get(0);
                for (int k = 1; k < 4096; k++) {
                    assertThat(block.get(k)).as("block %d is uniform", b).isEqualTo(first);
                }
                if (first != expected[b]) {
                    assertThat(later.get(b)).as("block %d holds %d, flushed value %d", b, first, expected[b])
                            .isNotNull().contains(first);
                }
            }
        }
    }
}
