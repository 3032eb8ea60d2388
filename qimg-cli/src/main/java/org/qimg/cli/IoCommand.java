package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.Images;
import org.qimg.OpenOptions;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qimg io}: runs qemu-io commands on an image, so a workload written for qemu-io runs
 * unchanged: {@code read [-P pattern]}, {@code write [-P pattern | -z [-u]]}, {@code discard},
 * {@code flush}, {@code map}.
 */
@Command(name = "io", description = "Run qemu-io style commands (read, write, discard, flush, map) on an image.")
final class IoCommand implements Callable<Integer> {
    @Option(names = "-f", paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = {"-r", "--read-only"}, description = "open the image read-only")
    boolean readOnly;

    @Option(names = {"-c", "--cmd"}, paramLabel = "CMD", description = "a command; may be repeated")
    List<String> commands = new ArrayList<>();

    @Option(names = {"-U", "--force-share"}, description = "take no image locks: read an image another process writes (with -r)")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    @Spec
    CommandSpec spec;

    private PrintWriter out;
    private boolean failed;

    @Override
    public Integer call() throws IOException {
        out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        OpenOptions options = OpenOptions.defaults().withFormat(format).withReadOnly(readOnly).withForceShare(forceShare);
        try (BlockDevice device = Images.open(image, options)) {
            for (String command : commands) {
                try {
                    run(device, command.strip().split("\\s+"));
                } catch (IllegalArgumentException e) {
                    out.flush();
                    err.println(e.getMessage());
                    failed = true;
                } catch (IOException e) {
                    out.flush();
                    err.println(command.strip().split("\\s+")[0] + " failed: " + Main.oneLine(e));
                    failed = true;
                }
            }
        }
        out.flush();
        return failed ? 1 : 0;
    }

    private void run(BlockDevice device, String[] words) throws IOException {
        String name = words[0];
        List<String> args = new ArrayList<>(Arrays.asList(words).subList(1, words.length));
        switch (name) {
            case "read", "r" -> read(device, args);
            case "write", "w" -> write(device, args);
            case "discard", "d" -> {
                long[] range = range(args, name);
                long start = System.nanoTime();
                device.discard(range[0], range[1]);
                report("discard", range, start);
            }
            case "flush", "f" -> device.flush();
            case "map" -> map(device);
            default -> throw new IllegalArgumentException("command \"" + name + "\" not found");
        }
    }

    private void read(BlockDevice device, List<String> args) throws IOException {
        Integer pattern = takePattern(args);
        long[] range = range(args, "read");
        checkInside(device, range);
        long start = System.nanoTime();
        ByteBuffer buffer = ByteBuffer.allocate(Math.toIntExact(range[1]));
        device.read(range[0], buffer);
        if (pattern != null) {
            byte p = (byte) (int) pattern;
            for (int i = 0; i < buffer.capacity(); i++) {
                if (buffer.get(i) != p) {
                    out.println("Pattern verification failed at offset " + range[0] + ", " + range[1] + " bytes");
                    failed = true;
                    break;
                }
            }
        }
        report("read", range, start);
    }

    private void write(BlockDevice device, List<String> args) throws IOException {
        boolean zero = args.remove("-z");
        boolean unmap = args.remove("-u");
        Integer pattern = takePattern(args);
        if (zero && pattern != null) {
            throw new IllegalArgumentException("-z and -P cannot be specified at the same time");
        }
        if (unmap && !zero) {
            throw new IllegalArgumentException("-u requires -z to be specified");
        }
        long[] range = range(args, "write");
        checkInside(device, range);
        long start = System.nanoTime();
        if (zero) {
            device.writeZeroes(range[0], range[1], unmap);
        } else {
            byte[] data = new byte[Math.toIntExact(range[1])];
            Arrays.fill(data, (byte) (int) (pattern == null ? 0xcd : pattern));
            device.write(range[0], ByteBuffer.wrap(data));
        }
        report("wrote", range, start);
    }

    private static void checkInside(BlockDevice device, long[] range) throws IOException {
        if (range[0] + range[1] > device.size()) {
            throw new IOException("Input/output error");
        }
    }

    private void map(BlockDevice device) throws IOException {
        BlockDevice.ExtentStream extents = device.map(0, device.size());
        Extent held = null;
        for (Extent e = extents.next(); ; e = extents.next()) {
            boolean allocated = e != null && (e.present() || e.beyondBacking());
            if (held != null && e != null && allocated == (held.present() || held.beyondBacking())) {
                held = new Extent(held.start(), held.length() + e.length(), false, false, held.present(),
                        0, null, -1, false, held.beyondBacking());
                continue;
            }
            if (held != null) {
                boolean a = held.present() || held.beyondBacking();
                out.printf("%s (0x%x) bytes %s allocated at offset %s (0x%x)%n", size(held.length()), held.length(),
                        a ? "   " : "not", size(held.start()), held.start());
            }
            if (e == null) {
                break;
            }
            held = e;
        }
    }

    private static Integer takePattern(List<String> args) {
        int at = args.indexOf("-P");
        if (at < 0) {
            return null;
        }
        if (at + 1 >= args.size()) {
            throw new IllegalArgumentException("-P needs a pattern");
        }
        String text = args.remove(at + 1);
        args.remove(at);
        try {
            return Integer.decode(text) & 0xFF;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Invalid pattern argument '" + text + "'");
        }
    }

    private static long[] range(List<String> args, String command) {
        if (args.size() != 2) {
            throw new IllegalArgumentException(command + ": needs an offset and a length");
        }
        return new long[] {Sizes.parse(args.get(0), "offset"), Sizes.parse(args.get(1), "length")};
    }

    private void report(String verb, long[] range, long startNanos) {
        double seconds = Math.max(1e-9, (System.nanoTime() - startNanos) / 1e9);
        out.println(verb + " " + range[1] + "/" + range[1] + " bytes at offset " + range[0]);
        out.printf(Locale.ROOT, "%s, 1 ops; %05.2f sec (%s/sec and %.4f ops/sec)%n", size(range[1]), seconds,
                size((long) (range[1] / seconds)), 1 / seconds);
    }

    /** qemu-io's human sizes: "64 KiB", "2.930 KiB", "512 bytes". */
    static String size(long value) {
        String[] units = {" EiB", " PiB", " TiB", " GiB", " MiB", " KiB"};
        double v = value;
        String suffix = " bytes";
        for (int i = 0; i < units.length; i++) {
            double unit = Math.pow(1024, 6 - i);
            if (value >= unit) {
                v = value / unit;
                suffix = units[i];
                break;
            }
        }
        String text = String.format(Locale.ROOT, "%.3f", v);
        return (text.endsWith(".000") ? text.substring(0, text.length() - 4) : text) + suffix;
    }
}
