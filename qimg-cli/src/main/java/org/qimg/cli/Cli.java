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
        return open(image, format, false);
    }

    /** Opens an image read-only; {@code forceShare} (-U) takes none of its locks, as qemu-img's -U. */
    static BlockDevice open(String image, String format, boolean forceShare) throws IOException {
        checkFormat(format);
        return Images.open(image, OpenOptions.defaults().withFormat(format).withForceShare(forceShare));
    }

    /** Refuses a -f other than qcow2 or raw (null: probe), as qemu-img does. */
    static void checkFormat(String format) {
        if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
            throw new IllegalArgumentException("Unknown file format '" + format + "'");
        }
    }

    /** Reads an --output value: true for json, false for human; anything else is refused. */
    static boolean json(String output) {
        return switch (output) {
            case "json" -> true;
            case "human" -> false;
            default -> throw new IllegalArgumentException("--output must be used with human or json as argument.");
        };
    }
}
