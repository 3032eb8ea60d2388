package org.qimg.testing;

import java.io.IOException;
import java.nio.file.Path;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;

/**
 * An image of the test corpus.
 *
 * @param name   a short name for test reports
 * @param path   the top image
 * @param format "qcow2" or "raw"
 */
public record CorpusImage(String name, Path path, String format) {
    /** Opens the image with qimg, naming its format as the corpus made it. */
    public BlockDevice open() throws IOException {
        return Images.open(path.toString(), OpenOptions.defaults().withFormat(format));
    }

    @Override
    public String toString() {
        return name;
    }
}
