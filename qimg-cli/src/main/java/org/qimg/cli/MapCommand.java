package org.qimg.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.ImageException;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code qimg map}: the block-status map, printed as qemu-img map prints it. */
@Command(name = "map", description = "Print the allocation map of an image and its backing chain.")
final class MapCommand implements Callable<Integer> {
    @Option(names = "-f", paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = "--output", paramLabel = "FMT", defaultValue = "human", description = "human or json")
    String output;

    @Option(names = {"-s", "--start-offset"}, paramLabel = "OFFSET", description = "first byte to map")
    String startOffset;

    @Option(names = {"-l", "--max-length"}, paramLabel = "LENGTH", description = "bytes to map at most")
    String maxLength;

    @Option(names = {"-U", "--force-share"}, description = "take no image locks: read an image another process writes")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    /** Set when picocli runs the command; null on the plain path from {@link Qimg}. */
    @Spec
    CommandSpec spec;

    /**
     * Reads a plain {@code map} command line without picocli: {@code args[0]} is "map", then the options
     * above, each given once as {@code -f FMT}, {@code --output=FMT} or {@code --output FMT} (and so
     * on), and one image name. Returns null for anything else (help, unknown or repeated options, a
     * missing value, a second image, a value that starts with '-', an @argument-file), which picocli
     * then parses and reports on. Building picocli's reflective model costs more than the whole map of a large image,
     * hence this path; MapCommandParseTest checks that both parsers agree.
     */
    static MapCommand parsePlain(String[] args) {
        if (args.length < 2 || !args[0].equals("map")) {
            return null;
        }
        MapCommand command = new MapCommand();
        boolean outputGiven = false;
        for (int i = 1; i < args.length; i++) {
            String arg = args[i];
            if (arg.startsWith("@")) {
                return null; // picocli reads arguments from the file @NAME
            }
            if (!arg.startsWith("-") || arg.equals("-")) {
                if (command.image != null) {
                    return null;
                }
                command.image = arg;
                continue;
            }
            if (arg.equals("--debug")) {
                if (command.debug) {
                    return null;
                }
                command.debug = true;
                continue;
            }
            if (arg.equals("-U") || arg.equals("--force-share")) {
                if (command.forceShare) {
                    return null;
                }
                command.forceShare = true;
                continue;
            }
            String name = arg;
            String value = null;
            int equals = arg.indexOf('=');
            if (arg.startsWith("--") && equals > 0) {
                name = arg.substring(0, equals);
                value = arg.substring(equals + 1);
            } else if (i + 1 < args.length && !args[i + 1].startsWith("-")) {
                value = args[++i];
            }
            if (value == null) {
                return null;
            }
            switch (name) {
                case "-f" -> {
                    if (command.format != null) {
                        return null;
                    }
                    command.format = value;
                }
                case "--output" -> {
                    if (outputGiven) {
                        return null;
                    }
                    outputGiven = true;
                    command.output = value;
                }
                case "-s", "--start-offset" -> {
                    if (command.startOffset != null) {
                        return null;
                    }
                    command.startOffset = value;
                }
                case "-l", "--max-length" -> {
                    if (command.maxLength != null) {
                        return null;
                    }
                    command.maxLength = value;
                }
                default -> {
                    return null;
                }
            }
        }
        if (command.image == null) {
            return null;
        }
        if (!outputGiven) {
            command.output = "human";
        }
        return command;
    }

    @Override
    public Integer call() throws IOException {
        boolean json = Cli.json(output);
        long start = startOffset == null ? 0 : Sizes.parse(startOffset, "start offset");
        long max = maxLength == null ? Long.MAX_VALUE : Sizes.parse(maxLength, "max length");
        PrintWriter out = spec != null ? spec.commandLine().getOut() : new PrintWriter(new java.io.OutputStreamWriter(
                new java.io.FileOutputStream(java.io.FileDescriptor.out), java.nio.charset.StandardCharsets.UTF_8), false);
        try (BlockDevice device = Cli.open(image, format, forceShare)) {
            long end = Math.min(device.size(), start + Math.min(max, Long.MAX_VALUE - start));
            if (json) {
                if (spec == null) {
                    // The plain path writes the map straight to standard output.
                    OutputStream raw = new java.io.BufferedOutputStream(
                            new java.io.FileOutputStream(java.io.FileDescriptor.out), 1 << 16);
                    JsonMap.print(device, start, end, raw, Runtime.getRuntime().availableProcessors());
                    raw.flush();
                } else {
                    out.flush();
                    JsonMap.print(device, start, end, new AsciiToWriter(out), Runtime.getRuntime().availableProcessors());
                }
                return 0;
            }
            return printHuman(device.map(start, Math.max(0, end - start)), out);
        } finally {
            out.flush();
        }
    }

    /** JSON maps are ASCII: bytes go to the command line's writer as they are. */
    private static final class AsciiToWriter extends OutputStream {
        private final PrintWriter out;

        AsciiToWriter(PrintWriter out) {
            this.out = out;
        }

        @Override
        public void write(int b) {
            out.write(b & 0xFF);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            char[] chars = new char[len];
            for (int i = 0; i < len; i++) {
                chars[i] = (char) (b[off + i] & 0xFF);
            }
            out.write(chars, 0, len);
        }

        @Override
        public void flush() {
            out.flush();
        }
    }

    /** qemu-img's human format: one row per range with data, zero and unallocated coalesced. */
    static int printHuman(BlockDevice.ExtentStream extents, PrintWriter out) throws IOException {
        out.print(String.format("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File"));
        Extent held = null;
        for (Extent e = extents.next(); e != null; e = extents.next()) {
            if (e.data() && !e.hasHostOffset()) {
                flushHuman(held, out);
                out.flush();
                throw new ImageException("File contains external, encrypted or compressed clusters.");
            }
            if (!e.data() || e.zero()) {
                flushHuman(held, out);
                held = null;
                continue;
            }
            if (held != null && held.end() == e.start() && held.depth() == e.depth()
                    && held.hostOffset() + held.length() == e.hostOffset() && held.hostFile().equals(e.hostFile())) {
                held = held.merge(e);
            } else {
                flushHuman(held, out);
                held = e;
            }
        }
        flushHuman(held, out);
        return 0;
    }

    private static void flushHuman(Extent e, PrintWriter out) throws IOException {
        if (e == null) {
            return;
        }
        out.print(String.format("%-16s%-16s%-16s%s\n", hex(e.start()), hex(e.length()), hex(e.hostOffset()),
                e.hostFile()));
    }

    /** C's "%#x": 0 prints as "0", others with the 0x prefix. */
    static String hex(long value) {
        return value == 0 ? "0" : "0x" + Long.toHexString(value);
    }
}
