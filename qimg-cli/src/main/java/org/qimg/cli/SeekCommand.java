package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;

import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code qimg seek}: lseek(2) SEEK_DATA / SEEK_HOLE answers over the whole chain. */
@Command(name = "seek", description = "Print where the next data or hole starts, one line per offset "
        + "(a decimal offset, ENXIO or EINVAL).")
final class SeekCommand implements Callable<Integer> {
    static final class Whence {
        @Option(names = "--data", required = true, description = "SEEK_DATA") boolean data;
        @Option(names = "--hole", required = true, description = "SEEK_HOLE") boolean hole;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Whence whence;

    @Option(names = "-f", paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = {"-U", "--force-share"}, description = "take no image locks: read an image another process writes")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    @Parameters(index = "1..*", arity = "1..*", paramLabel = "OFFSET")
    List<String> offsets;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        try (BlockDevice device = Cli.open(image, format, forceShare)) {
            for (String text : offsets) {
                long offset;
                try {
                    offset = Long.parseLong(text.strip());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("Invalid offset specified: '" + text + "'");
                }
                if (offset < 0) {
                    out.println("EINVAL");
                    continue;
                }
                OptionalLong result = whence.data ? device.seekData(offset) : device.seekHole(offset);
                out.println(result.isPresent() ? Long.toString(result.getAsLong()) : "ENXIO");
            }
        }
        out.flush();
        return 0;
    }
}
