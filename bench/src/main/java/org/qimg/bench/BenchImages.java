package org.qimg.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import org.qimg.BlockDevice;
import org.qimg.Images;

/**
 * Where the benchmark images are: the system property {@code qimg.bench.images}, else the
 * environment variable {@code QIMG_BENCH_IMAGES}, else {@code bench/work/images} under the current
 * directory. bench/make-images.sh makes them (about 4 GiB, a minute or two).
 */
final class BenchImages {
    /** The stamp bench/make-images.sh leaves once a complete set is made; bump both together. */
    static final String STAMP = ".images-v2";

    private BenchImages() {
    }

    static Path dir() {
        String dir = System.getProperty("qimg.bench.images");
        if (dir == null || dir.isBlank()) {
            dir = System.getenv("QIMG_BENCH_IMAGES");
        }
        if (dir == null || dir.isBlank()) {
            dir = "bench/work/images";
        }
        return Path.of(dir).toAbsolutePath();
    }

    /** The file of a benchmark image: "sparse-4t", "chain" (its top layer) or "far-4t". */
    static Path file(String image) {
        Path dir = dir();
        if (!Files.exists(dir.resolve(STAMP))) {
            throw new IllegalStateException("The benchmark images are missing in " + dir + ". Make them with"
                    + " bench/make-images.sh " + dir + " (about 4 GiB, a minute or two), or point"
                    + " -Dqimg.bench.images=DIR or QIMG_BENCH_IMAGES=DIR at a folder that has them.");
        }
        return dir.resolve(switch (image) {
            case "chain" -> "chain-top.qcow2";
            default -> image + ".qcow2";
        });
    }

    static BlockDevice open(String image) throws IOException {
        return Images.open(file(image).toString());
    }
}
