package org.qimg.cli;

import java.io.IOException;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code qimg resize}: grow an image, or shrink it over holes. */
@Command(name = "resize", description = "Change the virtual size of an image: SIZE, +SIZE or -SIZE.")
final class ResizeCommand implements Callable<Integer> {
    @Option(names = "-f", paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = "--shrink", description = "allow the image to get smaller (only holes may be cut)")
    boolean shrink;

    @Option(names = {"-q", "--quiet"}, description = "print nothing on success")
    boolean quiet;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    @Parameters(index = "1", paramLabel = "SIZE")
    String size;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        try (BlockDevice device = Images.open(image, OpenOptions.defaults().withFormat(format).writable())) {
            String text = size.strip();
            long newSize;
            if (text.startsWith("+")) {
                newSize = Math.addExact(device.size(), Sizes.parse(text.substring(1), "image size"));
            } else if (text.startsWith("-")) {
                newSize = device.size() - Sizes.parse(text.substring(1), "image size");
            } else {
                newSize = Sizes.parse(text, "image size");
            }
            if (newSize < 0) {
                throw new IllegalArgumentException("New image size must be positive");
            }
            if (newSize < device.size() && !shrink) {
                throw new IllegalArgumentException("Use the --shrink option to perform a shrink operation.");
            }
            device.resize(newSize);
        }
        if (!quiet) {
            spec.commandLine().getOut().println("Image resized.");
        }
        return 0;
    }
}
