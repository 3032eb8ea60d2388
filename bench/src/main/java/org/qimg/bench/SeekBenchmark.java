package org.qimg.bench;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.qimg.BlockDevice;
import org.qimg.Extent;

/**
 * Warm seeks: one open device, SEEK_DATA / SEEK_HOLE from a cycle of 4096 offsets; the sample mode
 * reports the distribution (p0.50 is the median the targets speak of).
 * <ul>
 *   <li>{@code from=random}: offsets uniform over the device (fixed seed).</li>
 *   <li>{@code from=longest-holes}: the first byte of the 64 longest holes of the map, so that every
 *       seekData crosses a whole hole: the far case.</li>
 * </ul>
 * Image far-4t holds one cluster at each end of 4 TiB: from anywhere, the next data is terabytes
 * away.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xss8m"})
@State(Scope.Thread)
public class SeekBenchmark {
    private static final int OFFSETS = 4096;

    @Param({"sparse-4t", "chain", "far-4t"})
    public String image;

    @Param({"random", "longest-holes"})
    public String from;

    private BlockDevice device;
    private final long[] offsets = new long[OFFSETS];
    private int next;

    @Setup(Level.Trial)
    public void open() throws IOException {
        device = BenchImages.open(image);
        if (from.equals("random")) {
            SplittableRandom random = new SplittableRandom(20250101);
            for (int i = 0; i < OFFSETS; i++) {
                offsets[i] = random.nextLong(device.size());
            }
            return;
        }
        List<Extent> holes = new ArrayList<>();
        BlockDevice.ExtentStream extents = device.map(0, device.size());
        for (Extent e = extents.next(); e != null; e = extents.next()) {
            if (e.zero()) {
                holes.add(e);
            }
        }
        holes.sort(Comparator.comparingLong(Extent::length).reversed());
        int n = Math.min(64, holes.size());
        for (int i = 0; i < OFFSETS; i++) {
            offsets[i] = holes.get(i % n).start();
        }
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        device.close();
    }

    @Benchmark
    public long seekData() throws IOException {
        return device.seekData(offsets[next++ & (OFFSETS - 1)]).orElse(-1);
    }

    @Benchmark
    public long seekHole() throws IOException {
        return device.seekHole(offsets[next++ & (OFFSETS - 1)]).orElse(-1);
    }
}
