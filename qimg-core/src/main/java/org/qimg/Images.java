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
        return new ChainDevice(ChainOpener.open(name, options));
    }
}
