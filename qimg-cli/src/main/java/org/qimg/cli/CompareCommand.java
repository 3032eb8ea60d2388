package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.util.concurrent.Callable;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.image.ChainDevice;
import org.qimg.image.Layer;
import org.qimg.image.Qcow2Layer;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code qimg compare}: whether two images (each with its backing chain) read the same, with
 * qemu-img's semantics, messages and exit codes (QEMU 7.2). Ranges that both maps call zero are
 * skipped; everything else is read and compared. A mismatch is reported at the start of the first
 * differing 512-byte sector. Images of different sizes are equal when the longer one reads as zeroes
 * past the shorter one's end. Strict mode also requires equal sizes and equal block status.
 */
@Command(name = "compare", mixinStandardHelpOptions = true,
        description = "Check whether two images have the same content "
                + "(exit 0 identical, 1 different, 2 cannot open, 3 cannot map, 4 cannot read).")
final class CompareCommand implements Callable<Integer> {
    static final int EXIT_IDENTICAL = 0;
    static final int EXIT_DIFFERENT = 1;
    static final int EXIT_ERROR = 2;
    static final int EXIT_MAP_ERROR = 3;
    static final int EXIT_READ_ERROR = 4;
    /** qemu-img compares at most this many bytes at once (IO_BUF_SIZE). */
    static final int IO_BUFFER = 2 << 20;
    static final int SECTOR = 512;

    @Option(names = {"-f", "--a-format"}, paramLabel = "FMT", description = "format of the first image; probed if absent")
    String formatA;

    @Option(names = {"-F", "--b-format"}, paramLabel = "FMT", description = "format of the second image; probed if absent")
    String formatB;

    @Option(names = {"-s", "--strict"}, description = "strict mode: sizes and block status must be equal too")
    boolean strict;

    @Option(names = {"-p", "--progress"}, description = "show progress on standard error")
    boolean progress;

    @Option(names = {"-q", "--quiet"}, description = "print nothing but errors")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "take no image locks: read images another process writes")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE1")
    String imageA;

    @Parameters(index = "1", paramLabel = "IMAGE2")
    String imageB;

    @Spec
    CommandSpec spec;

    private PrintWriter out;
    private PrintWriter err;

    /** A failure with the exit code qemu-img gives it. */
    private static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;
        final int exitCode;

        Failure(int exitCode, String message, Throwable cause) {
            super(message, cause);
            this.exitCode = exitCode;
        }
    }

    @Override
    public Integer call() {
        out = spec.commandLine().getOut();
        err = spec.commandLine().getErr();
        try {
            try (BlockDevice a = open(imageA, formatA, forceShare); BlockDevice b = open(imageB, formatB, forceShare)) {
                return compare(new Side(a, imageA), new Side(b, imageB));
            } catch (IOException closing) {
                throw new Failure(EXIT_ERROR, Main.oneLine(closing), closing);
            }
        } catch (Failure f) {
            out.flush();
            if (debug && f.getCause() != null) {
                f.getCause().printStackTrace(err);
            }
            err.println("qimg: " + f.getMessage());
            err.flush();
            return f.exitCode;
        } finally {
            out.flush();
        }
    }

    private static BlockDevice open(String image, String format, boolean forceShare) throws Failure {
        try {
            return Cli.open(image, format, forceShare);
        } catch (IOException | RuntimeException e) {
            throw new Failure(EXIT_ERROR, Main.oneLine(e), e);
        }
    }

    private void say(String line) {
        if (!quiet) {
            out.println(line);
        }
    }

    private int compare(Side a, Side b) throws Failure {
        long common = Math.min(a.size, b.size);
        long total = Math.max(a.size, b.size);
        Progress bar = new Progress(err, progress && !quiet, 2f);
        bar.update(0, total);
        try {
            if (strict && a.size != b.size) {
                say("Strict mode: Image size mismatch!");
                return EXIT_DIFFERENT;
            }
            for (long pos = 0; pos < common; ) {
                Extent ea = a.at(pos);
                Extent eb = b.at(pos);
                long end = Math.min(common, Math.min(ea.end(), eb.end()));
                end = a.splitAtEof(ea, pos, end);
                end = b.splitAtEof(eb, pos, end);
                if (strict && a.status(ea, pos) != b.status(eb, pos)) {
                    say("Strict mode: Offset " + pos + " block status mismatch!");
                    return EXIT_DIFFERENT;
                }
                if (!(ea.zero() && eb.zero())) {
                    long mismatch = firstDifference(a, ea.zero(), b, eb.zero(), pos, end);
                    if (mismatch >= 0) {
                        say("Content mismatch at offset " + mismatch + "!");
                        return EXIT_DIFFERENT;
                    }
                }
                pos = end;
                bar.update(pos, total);
            }
            if (a.size != b.size) {
                say("Warning: Image size mismatch!");
                Side over = a.size > b.size ? a : b;
                for (long pos = common; pos < over.size; ) {
                    Extent e = over.at(pos);
                    if (e.present() && !e.zero()) {
                        long nonZero = firstDifference(over, false, null, true, pos, e.end());
                        if (nonZero >= 0) {
                            say("Content mismatch at offset " + nonZero + "!");
                            return EXIT_DIFFERENT;
                        }
                    }
                    pos = e.end();
                    bar.update(pos, total);
                }
            }
            say("Images are identical.");
            return EXIT_IDENTICAL;
        } finally {
            bar.end();
        }
    }

    /**
     * The first differing sector of {@code [from, to)}, as qemu-img reports it: the range is taken in
     * pieces of at most 2 MiB, and a difference is reported at the start of its 512-byte sector
     * counted from the piece's start; -1 when the range reads the same. A side whose range is zero by
     * its map (or a null side) is not read.
     */
    private long firstDifference(Side a, boolean aZero, Side b, boolean bZero, long from, long to) throws Failure {
        for (long at = from; at < to; at += IO_BUFFER) {
            int n = (int) Math.min(IO_BUFFER, to - at);
            ByteBuffer bytesA = aZero ? a.zeroes(n) : a.read(at, n);
            ByteBuffer bytesB = bZero ? (b == null ? a.zeroes(n) : b.zeroes(n)) : b.read(at, n);
            int index = bytesA.mismatch(bytesB);
            if (index >= 0) {
                return at + (long) (index / SECTOR) * SECTOR;
            }
        }
        return -1;
    }

    /** One image being compared: its map, read position and buffers. */
    private static final class Side {
        final BlockDevice device;
        final String name;
        final long size;
        /** The L2-table span of each layer (0 for raw): QEMU's qcow2 block status never crosses one. */
        private final long[] l2Spans;
        private final ByteBuffer buffer = ByteBuffer.allocateDirect(IO_BUFFER);
        private final ByteBuffer zeroBuffer = ByteBuffer.allocateDirect(IO_BUFFER);
        private BlockDevice.ExtentStream stream;
        private Extent current;

        Side(BlockDevice device, String name) {
            this.device = device;
            this.name = name;
            this.size = device.size();
            if (device instanceof ChainDevice chain) {
                l2Spans = chain.layers().stream().mapToLong(Side::l2Span).toArray();
            } else {
                l2Spans = new long[0];
            }
        }

        private static long l2Span(Layer layer) {
            if (layer instanceof Qcow2Layer q) {
                return q.header().clusterSize() << q.header().l2Bits();
            }
            return 0;
        }

        /** The extent that holds {@code pos}; positions only move forward. */
        Extent at(long pos) throws Failure {
            try {
                if (stream == null || (current != null && pos < current.start())) {
                    stream = device.map(pos, size - pos);
                    current = null;
                }
                while (current == null || current.end() <= pos) {
                    current = stream.next();
                    if (current == null) {
                        throw new IOException("the map of " + name + " ends before offset " + pos);
                    }
                }
                return current;
            } catch (IOException | RuntimeException e) {
                throw new Failure(EXIT_MAP_ERROR, "Sector allocation test failed for " + name + ": "
                        + Main.oneLine(e), e);
            }
        }

        ByteBuffer read(long at, int n) throws Failure {
            ByteBuffer dst = buffer.clear().limit(n);
            try {
                device.read(at, dst);
            } catch (IOException | RuntimeException e) {
                throw new Failure(EXIT_READ_ERROR, "Error while reading offset " + at + " of " + name + ": "
                        + Main.oneLine(e), e);
            }
            return dst.flip();
        }

        ByteBuffer zeroes(int n) {
            return zeroBuffer.clear().limit(n);
        }

        /**
         * QEMU's block status of the chain (bdrv_block_status_above) as flag bits: allocated (zeroes
         * past the end of a short backing file count as allocated there), zero, data, offset valid,
         * and EOF (the status call from {@code pos} reaches the end of the image).
         */
        int status(Extent e, long pos) {
            boolean allocated = e.present() || e.beyondBacking();
            boolean offsetValid = e.hasHostOffset() && !e.beyondBacking();
            boolean eof = e.end() == size && pos >= eofFrom(e);
            return (allocated ? 1 : 0) | (e.zero() ? 2 : 0) | (e.data() ? 4 : 0) | (offsetValid ? 8 : 0) | (eof ? 16 : 0);
        }

        /** {@code end}, or the offset inside {@code [pos, end)} where the EOF flag starts. */
        long splitAtEof(Extent e, long pos, long end) {
            if (e.end() != size) {
                return end;
            }
            long from = eofFrom(e);
            return from > pos && from < end ? from : end;
        }

        /**
         * The first offset of the last extent {@code e} from which one QEMU status call reaches the end:
         * a qcow2 layer consulted on the way down (those above and at {@code e.depth()}) ends its
         * answer at the end of an L2 table and after at most INT_MAX bytes.
         */
        private long eofFrom(Extent e) {
            long from = e.start();
            for (int depth = 0; depth <= e.depth() && depth < l2Spans.length; depth++) {
                long span = l2Spans[depth];
                if (span > 0) {
                    from = Math.max(from, Math.max((size - 1) / span * span, size - Integer.MAX_VALUE));
                }
            }
            return from;
        }
    }
}
