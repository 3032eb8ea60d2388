package org.qimg.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayDeque;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.qimg.BlockDevice;
import org.qimg.Extent;

/**
 * Prints a map as qemu-img 7.2's JSON: "[" then one object per merged extent, joined by ",\n", then
 * "]\n".
 *
 * <p>A large range is cut into chunks that threads walk at the same time; each formats its extents
 * but the first and the last, and the printing thread joins the chunks in order, merging an extent
 * that a cut split in two. Merging is decided on adjacent pairs only ({@link Extent#mergeableWith}),
 * so the joined output is the one a single walk prints. Walking a 4 TiB image touches ~480 MB of L2
 * tables, and the page faults and the scan split well over the cores.
 */
final class JsonMap {
    /** Below this many guest bytes one thread walks: a smaller image has at most a few L2 tables. */
    static final long PARALLEL_FROM = 16L << 30;
    /** Chunks start at multiples of this, so no L2 table of 64 KiB clusters is walked twice. */
    private static final long CHUNK_ALIGN = 1L << 30;
    private static final int CHUNKS_PER_THREAD = 8;

    private final OutputStream out;
    private final AsciiBuffer buffer = new AsciiBuffer(1 << 16);
    /** The last extent seen, not printed yet: the next one may continue it. */
    private Extent pending;

    private JsonMap(OutputStream out) {
        this.out = out;
    }

    /**
     * Prints the map of {@code [from, to)} of {@code device}, walked by up to {@code threads} threads;
     * {@code from >= to} is an empty range (a start at or past the end of the device).
     */
    static void print(BlockDevice device, long from, long to, OutputStream out, int threads) throws IOException {
        JsonMap printer = new JsonMap(out);
        printer.buffer.append('[');
        try {
            if (threads > 1 && to - from >= PARALLEL_FROM) {
                printer.parallel(device, from, to, threads);
            } else if (from < to) {
                printer.sequential(device, from, to);
            }
            if (printer.pending != null) {
                line(printer.pending, printer.buffer);
            } else {
                // An empty range: qemu-img prints one entry of length 0 where the range starts.
                printer.buffer.append("{ \"start\": ").append(from).append(", \"length\": 0, \"depth\": 0, "
                        + "\"present\": false, \"zero\": false, \"data\": false}");
            }
            printer.buffer.append("]\n");
        } finally {
            printer.buffer.writeTo(out);
        }
    }

    private static final byte[] START = ascii("{ \"start\": ");
    private static final byte[] LENGTH = ascii(", \"length\": ");
    private static final byte[] DEPTH = ascii(", \"depth\": ");
    private static final byte[] PRESENT = ascii(", \"present\": ");
    private static final byte[] ZERO = ascii(", \"zero\": ");
    private static final byte[] DATA = ascii(", \"data\": ");
    private static final byte[] OFFSET = ascii(", \"offset\": ");
    private static final byte[] TRUE = ascii("true");
    private static final byte[] FALSE = ascii("false");

    private static byte[] ascii(String text) {
        return text.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }

    /** One object, as qemu-img's dump_map_entry prints it, without the separator. */
    static void line(Extent e, AsciiBuffer to) {
        to.append(START).append(e.start()).append(LENGTH).append(e.length())
                .append(DEPTH).append(e.depth()).append(PRESENT).append(e.present() ? TRUE : FALSE)
                .append(ZERO).append(e.zero() ? TRUE : FALSE).append(DATA).append(e.data() ? TRUE : FALSE);
        if (e.hasHostOffset()) {
            to.append(OFFSET).append(e.hostOffset());
        }
        to.append('}');
    }

    /** Adds the next extent of the map; prints the pending one when {@code e} does not continue it. */
    private void add(Extent e) throws IOException {
        if (pending == null) {
            pending = e;
        } else if (pending.mergeableWith(e)) {
            pending = pending.merge(e);
        } else {
            line(pending, buffer);
            buffer.append(",\n");
            pending = e;
            if (buffer.length() >= 1 << 16) {
                buffer.writeTo(out);
                buffer.clear();
            }
        }
    }

    private void sequential(BlockDevice device, long from, long to) throws IOException {
        long at = from;
        try {
            BlockDevice.ExtentStream extents = device.map(from, to - from);
            for (Extent e = extents.next(); e != null; e = extents.next()) {
                add(e);
                at = e.end();
            }
        } catch (IOException | RuntimeException failure) {
            // The stream reads one piece ahead to merge, while qemu-img prints an extent as soon as
            // the next piece differs from it. Walk on piece by piece from where the stream stopped,
            // so that the same lines come out before the same failure as with qemu-img.
            while (at < to) {
                Extent piece = device.extentAt(at, to - at);
                add(piece);
                at = piece.end();
            }
            throw failure;
        }
    }

    /** A walked chunk: its first and last extents, and the lines of those between, each with ",\n". */
    private record Chunk(Extent first, AsciiBuffer middle, Extent last) {
    }

    private static Chunk walk(BlockDevice device, long from, long to) throws IOException {
        BlockDevice.ExtentStream extents = device.map(from, to - from);
        Extent first = extents.next();
        AsciiBuffer middle = new AsciiBuffer(1 << 12);
        Extent last = null;
        for (Extent e = extents.next(); e != null; e = extents.next()) {
            if (last != null) {
                line(last, middle);
                middle.append(",\n");
            }
            last = e;
        }
        return new Chunk(first, middle, last);
    }

    private void parallel(BlockDevice device, long from, long to, int threads) throws IOException {
        long chunk = (to - from) / ((long) threads * CHUNKS_PER_THREAD);
        chunk = Math.max(CHUNK_ALIGN, (chunk + CHUNK_ALIGN - 1) & -CHUNK_ALIGN);
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "qimg-map");
            t.setDaemon(true);
            return t;
        });
        // A window of chunks in flight keeps memory bounded when the output is slower than the walk.
        ArrayDeque<Future<Chunk>> window = new ArrayDeque<>();
        ArrayDeque<Long> starts = new ArrayDeque<>();
        long next = from;
        try {
            while (next < to || !window.isEmpty()) {
                while (next < to && window.size() < 2 * threads) {
                    long chunkFrom = next;
                    long chunkTo = Math.min(to, (chunkFrom + chunk) & -CHUNK_ALIGN);
                    window.add(pool.submit(() -> walk(device, chunkFrom, chunkTo)));
                    starts.add(chunkFrom);
                    next = chunkTo;
                }
                Future<Chunk> head = window.poll();
                long headFrom = starts.poll();
                Chunk c;
                try {
                    c = head.get();
                } catch (ExecutionException e) {
                    // Walk the rest here, one extent after the other: the same failure then surfaces at
                    // the same point of the output as in a single walk.
                    // No interrupts: one would close the FileChannel that all threads share.
                    for (Future<Chunk> f : window) {
                        f.cancel(false);
                    }
                    window.clear();
                    sequential(device, headFrom, to);
                    return;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while mapping", e);
                }
                if (c.first() == null) {
                    continue;
                }
                add(c.first());
                if (c.last() != null) {
                    line(pending, buffer);
                    buffer.append(",\n");
                    buffer.writeTo(out);
                    buffer.clear();
                    c.middle().writeTo(out);
                    pending = c.last();
                }
            }
        } finally {
            pool.shutdown();
        }
    }
}
