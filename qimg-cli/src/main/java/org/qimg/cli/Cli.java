package org.qimg.cli;

import java.io.IOException;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;

/** Helpers shared by the subcommands. */
final class Cli {
    private Cli() {
    }

    static BlockDevice open(String image, String format) throws IOException {
        if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
            throw new IllegalArgumentException("Unknown file format '" + format + "'");
        }
        return Images.open(image, OpenOptions.defaults().withFormat(format));
    }
}
