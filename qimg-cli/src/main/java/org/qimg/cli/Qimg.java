package org.qimg.cli;

import java.io.PrintWriter;

/**
 * The process entry point. A plain {@code qimg map}, {@code convert} or {@code bench} runs straight
 * away; everything else goes through picocli in {@link Main}. Loading and verifying picocli (compiled
 * for Java 5, so the JVM's class-data archives cannot hold it) and building its reflective model
 * takes about 90 ms, several times the cost of mapping a 4 TiB image. This class must not refer to
 * picocli, or loading it would pull picocli in.
 */
public final class Qimg {
    private Qimg() {
    }

    public static void main(String[] args) {
        // Every command opens files: build the native-call handle on the second CPU meanwhile.
        Thread.ofPlatform().daemon().name("qimg-native-calls").start(org.qimg.host.HostFile::prepareNativeCalls);
        int code = run(args);
        // A plain map that succeeded just returns: its threads are daemons, and System.exit would
        // first look up a System.Logger (Runtime.exit logs at debug level), loading some thirty
        // classes for nothing. Other commands may leave threads behind, so they exit explicitly.
        if (code != 0 || !isPlainMap(args)) {
            System.exit(code);
        }
    }

    private static boolean isPlainMap(String[] args) {
        return MapCommand.parsePlain(args) != null;
    }

    /** Runs one command line; returns the exit code. */
    static int run(String[] args) {
        MapCommand map = MapCommand.parsePlain(args);
        ConvertCommand convert = map == null ? ConvertCommand.parsePlain(args) : null;
        BenchCommand bench = map == null && convert == null ? BenchCommand.parsePlain(args) : null;
        PrintWriter out = new PrintWriter(System.out, false);
        PrintWriter err = new PrintWriter(System.err, true);
        if (map == null && convert == null && bench == null) {
            return Main.run(args, out, err);
        }
        int code;
        try {
            if (map != null) {
                code = map.call();
            } else if (convert != null) {
                convert.err = err;
                code = convert.call();
            } else {
                bench.out = out;
                code = bench.call();
            }
        } catch (Exception | OutOfMemoryError e) {
            boolean debug = map != null ? map.debug : convert != null ? convert.debug : bench.debug;
            code = Main.failed(e, debug, out, err);
        }
        out.flush();
        return code;
    }
}
