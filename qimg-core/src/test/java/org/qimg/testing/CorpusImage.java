package org.qimg.testing;

import java.nio.file.Path;

/**
 * An image of the test corpus.
 *
 * @param name   a short name for test reports
 * @param path   the top image
 * @param format "qcow2" or "raw"
 */
public record CorpusImage(String name, Path path, String format) {
    @Override
    public String toString() {
        return name;
    }
}
