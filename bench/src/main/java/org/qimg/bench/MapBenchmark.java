package org.qimg.bench;

import java.io.IOException;
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
 * The full map of a device, as {@code qimg map} walks it, without the output.
 * <ul>
 *   <li>{@code map}: a warm engine; the file is mapped and its pages are in the page tables.</li>
 *   <li>{@code openAndMap}: open, map, close, as one run of the command does (its page faults on the
 *       fresh mapping of the L2 tables included, JVM start-up not).</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xss8m"})
@State(Scope.Benchmark)
public class MapBenchmark {
    @Param({"sparse-4t", "chain"})
    public String image;

    private BlockDevice device;

    @Setup(Level.Trial)
    public void open() throws IOException {
        device = BenchImages.open(image);
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        device.close();
    }

    static long walk(BlockDevice device) throws IOException {
        BlockDevice.ExtentStream extents = device.map(0, device.size());
        long dataExtents = 0;
        long mapped = 0;
        for (Extent e = extents.next(); e != null; e = extents.next()) {
            mapped += e.length();
            if (e.data()) {
                dataExtents++;
            }
        }
        if (mapped != device.size()) {
            throw new IllegalStateException("the map covers " + mapped + " of " + device.size() + " bytes");
        }
        return dataExtents;
    }

    @Benchmark
    public long map() throws IOException {
        return walk(device);
    }

    @Benchmark
    public long openAndMap() throws IOException {
        try (BlockDevice fresh = BenchImages.open(image)) {
            return walk(fresh);
        }
    }
}
