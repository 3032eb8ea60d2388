package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.ImageException;
import org.qimg.host.HostFile;
import org.qimg.image.Qcow2Creator;
import org.qimg.image.RawCreator;
import org.qimg.image.ChainDevice;
import org.qimg.image.Layer;
import org.qimg.image.Qcow2Layer;
import org.qimg.image.RawLayer;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code qimg convert -O raw}: writes the content of an image and its backing chain to a raw file. The
 * output is sparse: ranges the map calls zero are never read nor written, and all-zero blocks inside
 * data are skipped too. Like qemu-img (whose target cache mode for convert is "unsafe") it does not
 * fsync the output.
 */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Copy the content of an image (and its backing chain) to a sparse raw file.")
final class ConvertCommand implements Callable<Integer> {
    /** qemu-img's bounds for -S: whole sectors, at most 16 MiB. */
    private static final long MAX_SPARSE = 16L << 20;

    @Option(names = "-f", paramLabel = "FMT", description = "source format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = "-O", paramLabel = "FMT", defaultValue = "raw", description = "output format: raw or qcow2")
    String outputFormat;

    @Option(names = {"-p", "--progress"}, description = "show progress on standard error")
    boolean progress;

    @Option(names = {"-q", "--quiet"}, description = "quiet mode (no progress)")
    boolean quiet;

    @Option(names = "-S", paramLabel = "SIZE", defaultValue = "4k",
            description = "skip all-zero blocks of this size inside data (default 4k; 0 writes all data)")
    String sparseSize;

    @Option(names = {"-U", "--force-share"}, description = "take no image locks: read a source another process writes")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Option(names = "-t", paramLabel = "CACHE", description = "the output's cache mode: unsafe (the default: no "
            + "flush) or none, writeback, writethrough, directsync (flushed at the end; qimg always writes through the "
            + "page cache)")
    String cache;

    @Option(names = "-n", description = "skip the output's creation: write into the existing image (or device)")
    boolean noCreate;

    @Option(names = "-c", description = "compress the output's clusters (qcow2)")
    boolean compress;

    @Option(names = "-o", paramLabel = "OPTIONS", description = "qcow2 creation options key=value[,...]")
    List<String> createOptions = new ArrayList<>();

    @Option(names = "-B", paramLabel = "BACKING", description = "make the output an overlay of this image")
    String outputBacking;

    @Option(names = "-F", paramLabel = "BACKING_FMT", description = "format of the -B image")
    String outputBackingFormat;

    @Parameters(index = "0", paramLabel = "SRC")
    String source;

    @Parameters(index = "1", paramLabel = "DST")
    String target;

    /** Set when picocli runs the command; null on the plain path from {@link Qimg}. */
    @Spec
    CommandSpec spec;

    /** Where progress goes on the plain path (picocli's error writer otherwise). */
    PrintWriter err;

    /**
     * Reads a plain {@code convert} command line without picocli, whose start (loading its Java 5
     * classes, which the AOT cache cannot hold, and building its model) costs ~65 ms, a fifth of a
     * 1 GiB convert: {@code args[0]} is "convert", then {@code -f FMT} and {@code -O FMT} (the value a
     * separate argument that does not start with '-'), the flags {@code -p}, {@code -q}, {@code -c}
     * and {@code --debug}, each at most once, and two names, SRC then DST. Returns null for anything
     * else (help, other or repeated options, clustered flags, a missing value, an @argument-file),
     * which picocli then parses and reports on; ConvertCommandParseTest checks that both parsers agree.
     */
    static ConvertCommand parsePlain(String[] args) {
        if (args.length < 3 || !args[0].equals("convert")
                || Arrays.stream(args).anyMatch(a -> a.startsWith("@"))) { // picocli reads @FILE's arguments
            return null;
        }
        ConvertCommand command = new ConvertCommand();
        List<String> names = new ArrayList<>(2);
        Set<String> given = new HashSet<>();
        for (int i = 1; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("-") || arg.equals("-")) {
                names.add(arg);
                continue;
            }
            if (!given.add(arg)) {
                return null;
            }
            switch (arg) {
                case "-p" -> command.progress = true;
                case "-q" -> command.quiet = true;
                case "-c" -> command.compress = true;
                case "--debug" -> command.debug = true;
                case "-U", "--force-share" -> command.forceShare = true;
                case "-n" -> command.noCreate = true;
                case "-f", "-O", "-t" -> {
                    if (i + 1 == args.length || args[i + 1].startsWith("-")) {
                        return null;
                    }
                    switch (arg) {
                        case "-f" -> command.format = args[++i];
                        case "-O" -> command.outputFormat = args[++i];
                        default -> command.cache = args[++i];
                    }
                }
                default -> {
                    return null;
                }
            }
        }
        if (names.size() != 2) {
            return null;
        }
        command.source = names.get(0);
        command.target = names.get(1);
        if (!given.contains("-O")) {
            command.outputFormat = "raw";
        }
        command.sparseSize = "4k";
        return command;
    }

    private PrintWriter err() {
        return spec != null ? spec.commandLine().getErr() : err;
    }

    /** The output is written as with cache=unsafe ({@link #unsafeCache}), set when the command runs. */
    private boolean unsafe;

    /**
     * Whether the output is written as with cache=unsafe, qemu-img convert's default: never flushed.
     * Every other mode flushes it at the end (and on the way, for qcow2 metadata order).
     */
    private boolean unsafeCache() {
        if (cache == null) {
            return true;
        }
        return switch (cache) {
            case "unsafe" -> true;
            case "none", "writeback", "writethrough", "directsync" -> false;
            default -> throw new IllegalArgumentException("Invalid cache option: " + cache);
        };
    }

    @Override
    public Integer call() throws IOException {
        unsafe = unsafeCache(); // refuses an unknown mode before anything is opened
        if (noCreate) {
            if (!createOptions.isEmpty()) {
                throw new IllegalArgumentException("-o has no effect when skipping image creation");
            }
            if (compress || outputBacking != null) {
                // qemu-img lets them through and then fails writing compressed clusters over allocated
                // ones, or writes as if the existing output had that backing image.
                throw new IllegalArgumentException("-c and -B need the output to be created (no -n)");
            }
        }
        switch (outputFormat) {
            case "raw" -> {
                if (compress || outputBacking != null || !createOptions.isEmpty()) {
                    throw new IllegalArgumentException("-c, -o and -B need -O qcow2");
                }
            }
            case "qcow2" -> {
            }
            default -> throw new IllegalArgumentException("Unknown file format '" + outputFormat + "'");
        }
        long sparse = Sizes.parse(sparseSize, "buffer size for sparse output");
        if (sparse % 512 != 0 || sparse > MAX_SPARSE) {
            throw new IllegalArgumentException("Invalid buffer size for sparse output specified. Valid sizes are "
                    + "multiples of 512 up to 16M. Select 0 to disable sparse detection (fully allocates output).");
        }
        if (outputFormat.equals("qcow2")) {
            return toQcow2((int) sparse);
        }
        try (BlockDevice device = Cli.open(source, format, forceShare)) {
            Path out = Path.of(target);
            refuseChainMember(device, out);
            if (noCreate) {
                return intoExistingRaw(device, out, (int) sparse);
            }
            if (Files.isDirectory(out)) {
                throw new ImageException("Could not create '" + target + "': Is a directory");
            }
            Progress bar = progressBar();
            boolean regular = !Files.exists(out) || Files.isRegularFile(out);
            // Locked before it is emptied, as qemu-img does: an image in use elsewhere stays untouched.
            try (HostFile output = HostFile.openForCreation(out, target)) {
                if (unsafe) {
                    output.disableSyncs(); // qemu-img convert's default, cache=unsafe
                }
                if (regular) {
                    // One hole but for its first block, as QEMU's file driver makes a file: the
                    // output's map starts with 4 KiB of data like qemu-img's.
                    RawCreator.startSparse(output, device.size());
                }
                output.lockCreated(HostFile.Use.RAW); // made: now held as qemu-img holds the raw file it writes
                new RawCopy(device, output, regular, (int) sparse, bar).run();
                output.sync(); // nothing with cache=unsafe
            }
            bar.end();
        }
        return 0;
    }

    /**
     * convert -n -O raw: into an existing file or device, as it is (neither emptied nor resized). Its
     * old bytes are no zeroes: what the source reads as zero is zeroed (a hole punched in a file where
     * the file system can, as qemu-img does).
     */
    private int intoExistingRaw(BlockDevice device, Path out, int sparse) throws IOException {
        HostFile output;
        try {
            output = HostFile.openReadWrite(out, target);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ImageException("Could not open '" + target + "': No such file or directory");
        }
        try (output) {
            if (!forceShare) {
                output.lock(HostFile.Use.RAW);
            }
            if (unsafe) {
                output.disableSyncs(); // qemu-img convert's default, cache=unsafe
            }
            refuseSmaller(output.size(), device.size());
            Progress bar = progressBar();
            new RawCopy(device, output, false, sparse, bar).run();
            output.sync(); // nothing with cache=unsafe
            bar.end();
        }
        return 0;
    }

    /** The -p display (off with -q), on stderr. */
    private Progress progressBar() {
        return new Progress(err(), progress && !quiet, 1f);
    }

    /** qemu-img's check before it writes into an output it did not create. */
    private static void refuseSmaller(long outputSize, long inputSize) {
        if (outputSize < inputSize) {
            throw new IllegalArgumentException("output file is smaller than input file");
        }
    }

    /** convert -O qcow2: create the output like qemu-img create, then copy what the map calls data. */
    private int toQcow2(int sparse) throws IOException {
        try (BlockDevice device = Cli.open(source, format, forceShare)) {
            Path out = Path.of(target);
            refuseChainMember(device, out);
            if (noCreate) {
                try (BlockDevice output = Images.open(target,
                        OpenOptions.defaults().withFormat("qcow2").writable().withUnsafeCache(unsafe))) {
                    refuseSmaller(output.size(), device.size());
                    Progress bar = progressBar();
                    new Qcow2Copy(device, output, false, sparse, false, false, bar).run();
                    bar.end();
                }
                return 0;
            }
            CreateOptionsParser parser = new CreateOptionsParser("qcow2");
            for (String o : createOptions) {
                parser.add(o);
            }
            if (outputBacking != null) {
                parser.set("backing_file", outputBacking);
                String backingFormat = outputBackingFormat;
                if (backingFormat == null) {
                    try (BlockDevice backing = Images.open(combine(target, outputBacking))) {
                        backingFormat = backing instanceof ChainDevice chain ? chain.top().format() : "qcow2";
                    }
                }
                parser.set("backing_fmt", backingFormat);
            }
            parser.set("size", Long.toString(device.size()));
            Qcow2Creator.create(out, parser.toOptions());
            Progress bar = progressBar();
            // Like qemu-img convert (cache=unsafe): ordered writes, no waiting for the disk.
            try (BlockDevice output = Images.open(target,
                    OpenOptions.defaults().withFormat("qcow2").writable().withUnsafeCache(unsafe))) {
                new Qcow2Copy(device, output, true, sparse, outputBacking != null, compress, bar).run();
            }
            bar.end();
        }
        return 0;
    }

    /** A relative backing name is relative to the folder of the image that names it. */
    private static String combine(String image, String backing) {
        if (backing.startsWith("/")) {
            return backing;
        }
        Path parent = Path.of(image).getParent();
        return parent == null ? backing : parent.resolve(backing).toString();
    }

    /** Truncating the output must never destroy the source: refuse any file of the chain as output. */
    private void refuseChainMember(BlockDevice device, Path out) throws IOException {
        if (!Files.exists(out) || !(device instanceof ChainDevice chain)) {
            return;
        }
        List<Path> files = new ArrayList<>();
        for (Layer layer : chain.layers()) {
            switch (layer) {
                case Qcow2Layer q -> {
                    files.add(q.file().path());
                    files.add(q.dataFile().path());
                }
                case RawLayer r -> files.add(r.file().path());
            }
        }
        for (Path p : files) {
            if (Files.isSameFile(p, out)) {
                throw new ImageException("'" + target + "' is a file of the source image ('" + p
                        + "'); refusing to overwrite it");
            }
        }
    }
}
