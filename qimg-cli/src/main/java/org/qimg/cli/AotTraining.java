package org.qimg.cli;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * The workloads of the build's AOT-cache training runs (src/aot/train.sh): the commands that users
 * start most often, over the images given, so that the classes they need are in the cache. Every
 * class a training loads is loaded at every start of a JVM using that cache (AOT class linking), so
 * the commands with a fast path of their own (map, convert, bench) get caches of their own, trained
 * on them alone, and the rest share one: a tiny map's run 60 -> 55 ms, a convert's 71 -> 65 ms
 * (docs/benchmarks.md). Not a user command; its output is thrown away. The images are small; the
 * commands that write make their files beside the first image (the training's work folder).
 */
public final class AotTraining {
    private AotTraining() {
    }

    /** {@code WORKLOAD IMAGE...}: WORKLOAD is map, convert, bench or all (the shared cache). */
    public static void main(String[] args) {
        String[] images = Arrays.copyOfRange(args, 1, args.length);
        switch (args[0]) {
            case "map" -> mapCommands(images);
            case "convert" -> convertCommands(images[0]);
            case "bench" -> benchCommands(images[0]);
            case "all" -> {
                mapCommands(images);
                for (String image : images) {
                    Qimg.run(new String[] {"seek", "--data", image, "0", "65536", "-1"});
                    Qimg.run(new String[] {"seek", "--hole", image, "0", "99999999999999"});
                }
                // Errors: only the shared cache holds their paths (a usage error goes through picocli).
                Qimg.run(new String[] {"map", "--output=json", "no-such-image.qcow2"});
                Qimg.run(new String[] {"map", "--no-such-option", images[0]});
                Qimg.run(new String[] {"--version"});
                writingCommands(images[0]);
            }
            default -> throw new IllegalArgumentException("unknown training workload " + args[0]);
        }
        System.out.flush();
        // As the commands do, so that what System.exit loads is in the cache too.
        System.exit(0);
    }

    private static void mapCommands(String[] images) {
        for (String image : images) {
            Qimg.run(new String[] {"map", "--output=json", image});
            Qimg.run(new String[] {"map", image});
        }
        Qimg.run(new String[] {"map", "--output=json", "--start-offset=64k", "-l", "1M", "-f", "qcow2", images[0]});
    }

    /** convert to qcow2 (plain and compressed) and to raw, from {@code chain}. */
    private static void convertCommands(String chain) {
        Path dir = Path.of(chain).toAbsolutePath().getParent();
        Qimg.run(new String[] {"convert", "-O", "qcow2", chain, dir.resolve("training-convert.qcow2").toString()});
        Qimg.run(new String[] {"convert", "-c", "-O", "qcow2", chain, dir.resolve("training-convert-c.qcow2").toString()});
        Qimg.run(new String[] {"convert", "-O", "raw", chain, dir.resolve("training-convert.raw").toString()});
    }

    /**
     * bench -w, sequential and scattered, on the empty 64 MiB image bench.qcow2 beside {@code chain}
     * (train.sh makes it with qemu-img: making it here would pull picocli's path into the cache).
     */
    private static void benchCommands(String chain) {
        String scratch = Path.of(chain).toAbsolutePath().getParent().resolve("bench.qcow2").toString();
        Qimg.run(new String[] {"bench", "-w", "-c", "2000", "-s", "4k", "-S", "1234567", scratch});
        Qimg.run(new String[] {"bench", "-w", "-c", "64", "-s", "1M", scratch});
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
        String scratch = dir.resolve("training-scratch.qcow2").toString();
        convertCommands(chain);
        Qimg.run(new String[] {"create", "-f", "qcow2", scratch, "64M"});
        Qimg.run(new String[] {"check", qcow2});
        Qimg.run(new String[] {"check", compressed});
        Qimg.run(new String[] {"io", "-c", "write -P 0x5a 0 64k", "-c", "write -z 1M 64k", "-c", "read -P 0x5a 0 64k",
                "-c", "flush", scratch});
        Qimg.run(new String[] {"bench", "-w", "-c", "2000", "-s", "4k", scratch});
    }
}
