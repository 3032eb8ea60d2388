package org.qimg.cli;

import java.io.PrintWriter;
import java.lang.foreign.MemorySegment;
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

/**
 * {@code qimg bench}: qemu-img bench's request loop, for side-by-side rates: COUNT requests in
 * qemu-img's order of offsets, DEPTH of them in flight at once (one thread each).
 */
@Command(name = "bench", description = "Run a simple read or write benchmark on an image (as qemu-img bench).")
final class BenchCommand implements Callable<Integer> {
    @Option(names = "-f", paramLabel = "FMT") String format;
    @Option(names = "-w", description = "write instead of read") boolean write;
    @Option(names = "-c", paramLabel = "COUNT", defaultValue = "75000") long count;
    @Option(names = "-d", paramLabel = "DEPTH", defaultValue = "64", description = "requests in flight (default 64)")
    int depth;
    @Option(names = "-s", paramLabel = "SIZE", defaultValue = "4k") String bufferSize;
    @Option(names = "-S", paramLabel = "STEP") String stepSize;
    @Option(names = "-o", paramLabel = "OFFSET", defaultValue = "0") String offsetText;
    @Option(names = "--pattern", paramLabel = "BYTE", defaultValue = "0") int pattern;
    @Option(names = "--flush-interval", paramLabel = "N", defaultValue = "0") long flushInterval;
    @Option(names = {"-q", "--quiet"}) boolean quiet;
    @Option(names = "--debug", hidden = true) boolean debug;
    @Option(names = {"-U", "--force-share"}, description = "take no image locks (reads only)") boolean forceShare;
    @Parameters(index = "0", paramLabel = "IMAGE") String image;
    @Spec CommandSpec spec;
    /** Where the plain path (no picocli) prints; picocli's writer otherwise. */
    PrintWriter out;

    /**
     * Reads a plain {@code bench} command line without picocli, whose start costs more than a short
     * benchmark (see {@link Qimg}): the short options, each at most once, with separate values in
     * plain decimal (or a size, for -s, -S and -o) and {@code --pattern=N} / {@code --flush-interval=N}.
     * Returns null for anything else, which picocli then reads (and reports on).
     */
    static BenchCommand parsePlain(String[] args) {
        if (args.length < 2 || !args[0].equals("bench")) {
            return null;
        }
        BenchCommand command = new BenchCommand();
        command.count = 75000;
        command.depth = 64;
        command.bufferSize = "4k";
        command.offsetText = "0";
        java.util.Set<String> given = new java.util.HashSet<>();
        for (int i = 1; i < args.length; i++) {
            String arg = args[i];
            if (arg.startsWith("@")) {
                return null; // picocli reads @FILE's arguments
            }
            if (!arg.startsWith("-") || arg.equals("-")) {
                if (command.image != null) {
                    return null;
                }
                command.image = arg;
                continue;
            }
            int equals = arg.indexOf('=');
            String name = arg.startsWith("--") && equals > 0 ? arg.substring(0, equals) : arg;
            if (!given.add(name)) {
                return null;
            }
            if (name.equals("--pattern") || name.equals("--flush-interval")) {
                long value = equals > 0 ? plainNumber(arg.substring(equals + 1), 9) : -1;
                if (value < 0) {
                    return null;
                }
                if (name.equals("--pattern")) {
                    command.pattern = (int) value;
                } else {
                    command.flushInterval = value;
                }
                continue;
            }
            switch (arg) {
                case "-w" -> command.write = true;
                case "-q" -> command.quiet = true;
                case "--debug" -> command.debug = true;
                case "-U", "--force-share" -> command.forceShare = true;
                case "-f", "-c", "-d", "-s", "-S", "-o" -> {
                    if (i + 1 == args.length || args[i + 1].startsWith("-") || args[i + 1].startsWith("@")) {
                        return null;
                    }
                    String value = args[++i];
                    switch (arg) {
                        case "-f" -> command.format = value;
                        case "-c" -> command.count = plainNumber(value, 18);
                        case "-d" -> command.depth = (int) plainNumber(value, 9);
                        case "-s" -> command.bufferSize = value;
                        case "-S" -> command.stepSize = value;
                        default -> command.offsetText = value;
                    }
                    if (command.count < 0 || command.depth < 0) {
                        return null;
                    }
                }
                default -> {
                    return null;
                }
            }
        }
        return command.image == null ? null : command;
    }

    /** A decimal number without sign or leading zero and of at most {@code digits} digits, or -1. */
    private static long plainNumber(String text, int digits) {
        if (text.isEmpty() || text.length() > digits || (text.length() > 1 && text.charAt(0) == '0')) {
            return -1;
        }
        for (int i = 0; i < text.length(); i++) {
            if (text.charAt(i) < '0' || text.charAt(i) > '9') {
                return -1;
            }
        }
        return Long.parseLong(text);
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec != null ? spec.commandLine().getOut() : this.out;
        int size = Math.toIntExact(Sizes.parse(bufferSize, "buffer size"));
        long step = stepSize == null ? size : Sizes.parse(stepSize, "step size");
        long offset = Sizes.parse(offsetText, "offset");
        if (size <= 0 || count <= 0) {
            throw new IllegalArgumentException("Invalid buffer size or request count");
        }
        if (depth <= 0) {
            throw new IllegalArgumentException("Invalid queue depth specified");
        }
        if (flushInterval > 0 && flushInterval < depth) {
            throw new IllegalArgumentException("Flush interval can't be smaller than depth");
        }
        OpenOptions options = OpenOptions.defaults().withFormat(format).withReadOnly(!write).withForceShare(forceShare);
        try (BlockDevice device = Images.open(image, options)) {
            long imageSize = device.size();
            if (imageSize < size) {
                throw new IllegalArgumentException("image is smaller than the buffer size");
            }
            if (!quiet) {
                out.printf("Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %d, step size %d)%n",
                        count, write ? "write" : "read", size, depth, offset, step);
                out.flush();
            }
            Requests requests = new Requests(device, offset, step, size, imageSize);
            // One thread per request in flight, each with a direct buffer (the kernel reads a direct
            // buffer as it is, where a heap buffer is copied first). Writers only read their buffer,
            // so they share one: 64 buffers of 1 MiB would cost 16,384 page faults to fill.
            int workers = (int) Math.min(depth, count);
            ByteBuffer[] buffers = new ByteBuffer[workers];
            ByteBuffer shared = write ? ByteBuffer.allocateDirect(size) : null;
            for (int w = 0; w < workers; w++) {
                buffers[w] = write ? shared.duplicate() : ByteBuffer.allocateDirect(size);
            }
            if (write) {
                MemorySegment.ofBuffer(shared).fill((byte) pattern);
            }
            long start = System.nanoTime();
            Thread[] threads = new Thread[workers];
            for (int w = 0; w < workers; w++) {
                ByteBuffer buffer = buffers[w];
                threads[w] = Thread.ofPlatform().start(() -> requests.serve(buffer));
            }
            for (Thread t : threads) {
                t.join();
            }
            requests.rethrow();
            // As qemu-img's, the time covers the requests; closing flushes what they wrote.
            out.printf(Locale.ROOT, "Run completed in %.3f seconds.%n", (System.nanoTime() - start) / 1e9);
            out.flush();
        }
        return 0;
    }

    /** Hands out the requests in qemu-img bench's order and runs them; keeps the first failure. */
    private final class Requests {
        private final BlockDevice device;
        private final long step;
        private final int size;
        private final long imageSize;
        private long next;
        private long issued;
        private long completed;
        private Exception failure;

        Requests(BlockDevice device, long offset, long step, int size, long imageSize) {
            this.device = device;
            this.next = offset;
            this.step = step;
            this.size = size;
            this.imageSize = imageSize;
        }

        /** The offset of the next request, or -1 when all are issued or one failed. */
        private synchronized long take() {
            if (issued == count || failure != null) {
                return -1;
            }
            issued++;
            long at = next;
            next += step;
            next = imageSize <= size ? 0 : next % (imageSize - size);
            return at;
        }

        /** Counts a completed request; true when a flush is due after it. */
        private synchronized boolean complete() {
            completed++;
            return flushInterval > 0 && completed % flushInterval == 0;
        }

        private synchronized void fail(Exception e) {
            if (failure == null) {
                failure = e;
            }
        }

        synchronized void rethrow() throws Exception {
            if (failure != null) {
                throw failure;
            }
        }

        void serve(ByteBuffer buffer) {
            try {
                for (long at = take(); at >= 0; at = take()) {
                    buffer.clear();
                    if (write) {
                        device.write(at, buffer);
                    } else {
                        device.read(at, buffer);
                    }
                    if (complete()) {
                        device.flush();
                    }
                }
            } catch (Exception e) {
                fail(e);
            }
        }
    }
}
