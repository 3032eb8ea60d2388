package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.CreateOptions;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.image.Qcow2Creator;
import org.qimg.image.RawCreator;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qimg create}: a new qcow2 or raw image, with qemu-img create's options, checks, messages and
 * file layout.
 */
@Command(name = "create", description = "Create a new image: qimg create -f qcow2 [-o OPTIONS] [-b BACKING -F FMT] "
        + "IMAGE [SIZE]. '-o help' lists the options.")
final class CreateCommand implements Callable<Integer> {
    @Option(names = "-f", paramLabel = "FMT", defaultValue = "raw", description = "qcow2 or raw (default raw, as qemu-img)")
    String format;

    @Option(names = "-o", paramLabel = "OPTIONS", description = "key=value[,key=value…]; may be repeated")
    List<String> options = List.of();

    @Option(names = "-b", paramLabel = "BACKING", description = "backing file (stored as given)")
    String backing;

    @Option(names = "-F", paramLabel = "BACKING_FMT", description = "format of the backing file")
    String backingFormat;

    @Option(names = "-u", description = "do not open the backing file (a size must be given)")
    boolean unsafe;

    @Option(names = "-q", description = "print nothing")
    boolean quiet;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", arity = "0..1", paramLabel = "IMAGE")
    String image;

    @Parameters(index = "1", arity = "0..1", paramLabel = "SIZE", description = "with a k, M, G, T, P or E suffix")
    String size;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        if (!format.equals("qcow2") && !format.equals("raw")) {
            throw new ImageException.Unsupported("Unknown file format '" + format + "' (qimg creates qcow2 and raw)");
        }
        CreateOptionsParser parser = new CreateOptionsParser(format);
        if (CreateOptionsParser.wantsHelp(options)) {
            out.print(parser.help());
            out.flush();
            return 0;
        }
        if (image == null) {
            throw new ImageException("Expecting image file name");
        }
        for (String o : options) {
            parser.add(o);
        }
        if (format.equals("raw") && (backing != null || backingFormat != null)) {
            throw new ImageException("Backing file not supported for file format 'raw'");
        }
        if (backing != null) {
            parser.set("backing_file", backing);
        }
        if (backingFormat != null) {
            parser.set("backing_fmt", backingFormat);
        }
        if (size != null) {
            if (parser.has("size")) {
                throw new ImageException("The image size must be specified only once");
            }
            long bytes;
            try {
                bytes = Sizes.parse(size, "image size");
            } catch (IllegalArgumentException e) {
                throw new ImageException("Invalid image size specified. You may use k, M, G, T, P or E suffixes for "
                        + "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            }
            parser.set("size", Long.toString(bytes));
        }
        checkBacking(parser);
        if (!parser.has("size")) {
            throw new ImageException("Image creation needs a size parameter");
        }
        if (!quiet) {
            out.println(parser.formattingLine(image));
            out.flush();
        }
        if (format.equals("raw")) {
            CreateOptions.Preallocation mode = parser.has("preallocation")
                    ? CreateOptions.Preallocation.parse(parser.get("preallocation")) : CreateOptions.Preallocation.OFF;
            RawCreator.create(Path.of(image), parser.number("size"), mode);
        } else {
            Qcow2Creator.create(Path.of(image), parser.toOptions());
        }
        return 0;
    }

    /**
     * bdrv_img_create: the backing file must open (unless -u) in the format given for it, and lends
     * the image its size when none is given.
     */
    private void checkBacking(CreateOptionsParser parser) throws IOException {
        String file = parser.get("backing_file");
        if (file == null) {
            return;
        }
        if (file.equals(image)) {
            throw new ImageException("Error: Trying to create an image with the same filename as the backing file");
        }
        if (file.isEmpty()) {
            throw new ImageException("Expected backing file name, got empty string");
        }
        String fmt = parser.get("backing_fmt");
        if (unsafe) {
            if (fmt == null) {
                throw new ImageException("Backing file specified without backing format");
            }
            return;
        }
        if (fmt != null && !fmt.equals("qcow2") && !fmt.equals("raw")) {
            throw new ImageException.Unsupported("Could not open backing image '" + file + "': qimg reads qcow2 and raw, not '"
                    + fmt + "' (use -u and give a size)");
        }
        String path = Qcow2Creator.resolve(Path.of(image), file).toString();
        long backingSize;
        String detected;
        try (BlockDevice device = Images.open(path, OpenOptions.defaults().withFormat(fmt))) {
            backingSize = device.size();
            detected = fmt != null ? fmt : probe(path);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ImageException("Could not open '" + path + "': No such file or directory; Could not open backing image.");
        } catch (ImageException e) {
            throw new ImageException(e.getMessage() + "; Could not open backing image.", e);
        }
        if (fmt == null) {
            throw new ImageException("Backing file specified without backing format (detected format of " + detected + ")");
        }
        if (!parser.has("size")) {
            parser.set("size", Long.toString(backingSize));
        }
    }

    private static String probe(String path) throws IOException {
        try (var in = java.nio.file.Files.newInputStream(Path.of(path))) {
            byte[] magic = in.readNBytes(4);
            return magic.length == 4 && java.nio.ByteBuffer.wrap(magic).getInt() == org.qimg.format.Qcow2Header.MAGIC
                    ? "qcow2" : "raw";
        }
    }
}
