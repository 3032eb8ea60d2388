package org.qimg.cli;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;

import org.qimg.BlockDevice;
import org.qimg.Extent;

/**
 * The loop of the copies: reads a device in map order and hands what it read, piece by piece and in
 * that order, to a {@link Sink} (which writes it out). A few threads, the caller's among them, each
 * take the next piece, read it into a buffer of their own, wait for their turn and hand it over. So
 * one thread's read runs while another writes, and the reading and writing of a piece stay on one CPU
 * and in its caches. On two CPUs a 1 GiB convert's loop takes ~165 ms this way, against ~195 ms with
 * one thread reading ahead of another that writes (docs/benchmarks.md).
 *
 * <p>The sink sees the pieces one at a time, in order, each from whichever thread read it: it needs
 * no locking of its own, as every hand-over happens after the previous one returned (its
 * {@link Sink#prepare} does run on several threads at once). A failure (of the map, a read, the
 * plan or the sink) stops every thread at its next piece and is thrown by {@link #run} as it was;
 * no thread outlives {@link #run}.
 */
final class ParallelCopy {
    /** Decides what to read of each extent of the map; called under a lock, extents in order. */
    interface Plan {
        void extent(Extent extent, Reads reads);
    }

    /** Given to the {@link Plan}: asks for reads, which come to the sink in the order asked. */
    interface Reads {
        /** Reads [{@code from}, {@code to}) in pieces of at most {@code piece} bytes. */
        void readRange(long from, long to, int piece);
    }

    /** Takes the pieces in order: the bytes read at an offset, then the extent they were read for. */
    interface Sink {
        /**
         * Work on a piece of bytes that needs no order (compression): runs on the thread that read
         * it, before its turn, while other threads prepare, read or hand over theirs.
         */
        default void prepare(Piece piece) throws IOException {
        }

        void accept(Piece piece) throws IOException;
    }

    /**
     * One thing the sink takes: the bytes read at {@code offset} in {@code data} (the sink's until it
     * returns), or, after the reads the plan asked for it, an {@code extent} of the map ({@code data}
     * null).
     */
    record Piece(long offset, ByteBuffer data, Extent extent) {
    }

    /** A piece to take: {@code length} bytes to read at {@code offset}, or an {@code extent} to hand over. */
    private record Task(long offset, int length, Extent extent) {
    }

    /** Reads of [from, to) in pieces of {@code piece} bytes, from {@code next} on. */
    private static final class Range {
        long next;
        final long to;
        final int piece;

        Range(long from, long to, int piece) {
            this.next = from;
            this.to = to;
            this.piece = piece;
        }
    }

    /** The first window of the map; each next one is twice as long. */
    private static final long FIRST_WINDOW = 4 << 20;

    private final BlockDevice source;
    private final Plan plan;
    private final Sink sink;
    private final int bufferSize;
    /** What the plan asked for the extent being worked through (Ranges), then the extent itself. */
    private final ArrayDeque<Object> pending = new ArrayDeque<>();
    private final Reads reads = (from, to, piece) -> {
        if (piece <= 0) {
            throw new IllegalArgumentException("pieces of " + piece + " bytes");
        }
        if (from < to) {
            pending.add(new Range(from, to, piece));
        }
    };
    // The fields below are guarded by this.
    /** The map of the current window, and where the windows mapped so far end. */
    private BlockDevice.ExtentStream extents;
    private long mapped;
    private long window = FIRST_WINDOW;
    /** The number the next piece taken gets. */
    private long taken;
    /** The number of the piece whose turn it is to go to the sink. */
    private long turn;
    private Throwable failure;

    private ParallelCopy(BlockDevice source, Plan plan, Sink sink, int bufferSize) {
        this.source = source;
        this.plan = plan;
        this.sink = sink;
        this.bufferSize = bufferSize;
    }

    /**
     * Copies all of {@code source} through {@code sink} with {@code threads} threads (the caller and
     * {@code threads - 1} more), each with a buffer of {@code bufferSize} bytes, the most a plan may
     * read as one piece.
     */
    static void run(BlockDevice source, int bufferSize, int threads, Plan plan, Sink sink) throws IOException {
        ParallelCopy copy = new ParallelCopy(source, plan, sink, bufferSize);
        Thread[] helpers = new Thread[threads - 1];
        for (int i = 0; i < helpers.length; i++) {
            helpers[i] = Thread.ofPlatform().name("qimg-copy-" + (i + 1)).daemon().start(() -> copy.work());
        }
        copy.work();
        boolean interrupted = false;
        for (Thread helper : helpers) {
            while (true) {
                try {
                    helper.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // the helpers stop by themselves once the copy failed or ended
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        copy.rethrowFailure();
    }

    /** One thread's loop: take the next piece, read it, hand it over in turn; until the end or a failure. */
    private void work() {
        ByteBuffer buffer = null;
        try {
            while (true) {
                Task task;
                long number;
                synchronized (this) {
                    if (failure != null) {
                        return;
                    }
                    task = nextTask();
                    if (task == null) {
                        return;
                    }
                    number = taken++;
                }
                Piece piece;
                if (task.extent() == null) {
                    if (buffer == null) {
                        buffer = ByteBuffer.allocateDirect(bufferSize);
                    }
                    buffer.clear().limit(task.length());
                    source.read(task.offset(), buffer);
                    piece = new Piece(task.offset(), buffer.flip(), null);
                    sink.prepare(piece);
                } else {
                    piece = new Piece(task.extent().start(), null, task.extent());
                }
                if (!awaitTurn(number)) {
                    return;
                }
                // A failure of the sink keeps the turn: the others stop at the failure, below.
                sink.accept(piece);
                passTurn();
            }
        } catch (Throwable t) {
            synchronized (this) {
                if (failure == null) {
                    failure = t;
                }
                notifyAll();
            }
        }
    }

    /** The next piece in map order; null at the end of the map. Called under the lock. */
    private Task nextTask() throws IOException {
        while (true) {
            Object first = pending.peek();
            if (first instanceof Range r) {
                if (r.next < r.to) {
                    long at = r.next;
                    int length = (int) Math.min(r.piece, r.to - at);
                    if (length > bufferSize) {
                        throw new IllegalArgumentException("piece of " + length + " bytes at " + at
                                + " exceeds the copy buffer (" + bufferSize + " bytes)");
                    }
                    r.next = at + length;
                    return new Task(at, length, null);
                }
                pending.poll();
                continue;
            }
            if (first instanceof Extent e) {
                pending.poll();
                return new Task(e.start(), 0, e);
            }
            Extent e = extents == null ? null : extents.next();
            if (e == null) {
                // The map is taken in windows that grow: the first extent comes without walking the
                // whole image's tables first (milliseconds for a dense GiB, before compilation).
                long size = source.size();
                if (mapped >= size) {
                    return null;
                }
                extents = source.map(mapped, Math.min(window, size - mapped));
                mapped += Math.min(window, size - mapped);
                window = Math.min(window * 2, 1L << 40);
                continue;
            }
            plan.extent(e, reads);
            pending.add(e);
        }
    }

    /** Waits until piece {@code number} may go to the sink; false if the copy failed meanwhile. */
    private synchronized boolean awaitTurn(long number) throws InterruptedIOException {
        while (turn != number && failure == null) {
            try {
                wait();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("copy interrupted");
            }
        }
        return failure == null;
    }

    private synchronized void passTurn() {
        turn++;
        notifyAll();
    }

    private synchronized void rethrowFailure() throws IOException {
        Throwable f = failure;
        if (f == null) {
            return;
        }
        if (f instanceof IOException io) {
            throw io;
        }
        if (f instanceof RuntimeException re) {
            throw re;
        }
        throw (Error) f;
    }
}
