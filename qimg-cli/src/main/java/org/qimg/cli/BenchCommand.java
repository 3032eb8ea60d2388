package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code qimg bench}: qemu-img bench's request loop, for side-by-side rates. */
@Command(name = "bench", description = "Run a simple read or write benchmark on an image (as qemu-img bench).")
final class BenchCommand implements Callable<Integer> {
    @Option(names = "-f", paramLabel = "FMT") String format;
    @Option(names = "-w", description = "write instead of read") boolean write;
    @Option(names = "-c", paramLabel = "COUNT", defaultValue = "75000") long count;
    @Option(names = "-s", paramLabel = "SIZE", defaultValue = "4k") String bufferSize;
    @Option(names = "-S", paramLabel = "STEP") String stepSize;
    @Option(names = "-o", paramLabel = "OFFSET", defaultValue = "0") String offsetText;
    @Option(names = "--pattern", paramLabel = "BYTE", defaultValue = "0") int pattern;
    @Option(names = "--flush-interval", paramLabel = "N", defaultValue = "0") long flushInterval;
    @Option(names = {"-q", "--quiet"}) boolean quiet;
    @Option(names = "--debug", hidden = true) boolean debug;
    @Parameters(index = "0", paramLabel = "IMAGE") String image;
    @Spec CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        int size = Math.toIntExact(Sizes.parse(bufferSize, "buffer size"));
        long step = stepSize == null ? size : Sizes.parse(stepSize, "step size");
        long offset = Sizes.parse(offsetText, "offset");
        if (size <= 0 || count <= 0) {
            throw new IllegalArgumentException("Invalid buffer size or request count");
        }
        OpenOptions options = OpenOptions.defaults().withFormat(format).withReadOnly(!write);
        long start;
        try (BlockDevice device = Images.open(image, options)) {
            long imageSize = device.size();
            if (imageSize < size) {
                throw new IllegalArgumentException("image is smaller than the buffer size");
            }
            if (!quiet) {
                out.printf("Sending %d %s requests, %d bytes each, 1 in parallel (starting at offset %d, step size %d)%n",
                        count, write ? "write" : "read", size, offset, step);
                out.flush();
            }
            // A direct buffer: the kernel reads it as it is, where a heap buffer is copied first.
            ByteBuffer buffer = ByteBuffer.allocateDirect(size);
            for (int i = 0; i < size; i++) {
                buffer.put(i, (byte) pattern);
            }
            start = System.nanoTime();
            for (long i = 0; i < count; i++) {
                buffer.clear();
                if (write) {
                    device.write(offset, buffer);
                    if (flushInterval > 0 && (i + 1) % flushInterval == 0) {
                        device.flush();
                    }
                } else {
                    device.read(offset, buffer);
                }
                offset += step;
                offset = imageSize <= size ? 0 : offset % (imageSize - size);
            }
            device.flush();
        }
        out.printf(Locale.ROOT, "Run completed in %.3f seconds.%n", (System.nanoTime() - start) / 1e9);
        out.flush();
        return 0;
    }
}
