package org.qimg;

import java.io.IOException;

import org.qimg.image.ChainDevice;
import org.qimg.image.ChainOpener;

/** Entry point of the library: opens images with their backing chains. */
public final class Images {
    private Images() {
    }

    /** Opens {@code name} (format probed) and its whole backing chain, read-only. */
    public static BlockDevice open(String name) throws IOException {
        return open(name, OpenOptions.defaults());
    }

    public static BlockDevice open(String name, OpenOptions options) throws IOException {
        org.qimg.image.Layer top = ChainOpener.open(name, options);
        try {
            return new ChainDevice(top);
        } catch (IOException | RuntimeException e) {
            for (org.qimg.image.Layer l = top; l != null; l = l.backing()) {
                try {
                    l.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /** Opens {@code name} (format probed) for writing; its backing images stay read-only. */
    public static BlockDevice openWritable(String name) throws IOException {
        return open(name, OpenOptions.defaults().writable());
    }
}
