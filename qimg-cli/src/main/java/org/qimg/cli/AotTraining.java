package org.qimg.cli;

import java.nio.file.Path;

/**
 * The workload of the build's AOT-cache training run (src/aot/train.sh): the commands that users
 * start most often, over the images given, so that the classes they need are in the cache. Not a
 * user command; its output is thrown away. The images are small; the commands that write make their
 * files beside the first image (the training's work folder).
 */
public final class AotTraining {
    private AotTraining() {
    }

    public static void main(String[] images) {
        for (String image : images) {
            Qimg.run(new String[] {"map", "--output=json", image});
            Qimg.run(new String[] {"map", image});
            Qimg.run(new String[] {"seek", "--data", image, "0", "65536", "-1"});
            Qimg.run(new String[] {"seek", "--hole", image, "0", "99999999999999"});
        }
        Qimg.run(new String[] {"map", "--output=json", "--start-offset=64k", "-l", "1M", "-f", "qcow2", images[0]});
        Qimg.run(new String[] {"map", "--output=json", "no-such-image.qcow2"});
        Qimg.run(new String[] {"map", "--no-such-option", images[0]});
        Qimg.run(new String[] {"--version"});
        writingCommands(images[0]);
        System.out.flush();
        // As the commands do, so that what System.exit loads is in the cache too.
        System.exit(0);
    }

    /**
     * convert (qcow2, compressed, raw), create, check, io and bench -w, from {@code chain}. Not info (nor
     * any --output=json but map's): it needs Jackson, and every class the training loads is loaded at
     * every start (AOT class linking), so Jackson's ~400 classes would cost each command ~8-10 ms
     * (map included) to save info ~50 ms.
     */
    private static void writingCommands(String chain) {
        Path dir = Path.of(chain).toAbsolutePath().getParent();
        String qcow2 = dir.resolve("training-convert.qcow2").toString();
        String compressed = dir.resolve("training-convert-c.qcow2").toString();
        String raw = dir.resolve("training-convert.raw").toString();
        String scratch = dir.resolve("training-scratch.qcow2").toString();
        Qimg.run(new String[] {"convert", "-O", "qcow2", chain, qcow2});
        Qimg.run(new String[] {"convert", "-c", "-O", "qcow2", chain, compressed});
        Qimg.run(new String[] {"convert", "-O", "raw", chain, raw});
        Qimg.run(new String[] {"create", "-f", "qcow2", scratch, "64M"});
        Qimg.run(new String[] {"check", qcow2});
        Qimg.run(new String[] {"check", compressed});
        Qimg.run(new String[] {"io", "-c", "write -P 0x5a 0 64k", "-c", "write -z 1M 64k", "-c", "read -P 0x5a 0 64k",
                "-c", "flush", scratch});
        Qimg.run(new String[] {"bench", "-w", "-c", "2000", "-s", "4k", scratch});
    }
}
