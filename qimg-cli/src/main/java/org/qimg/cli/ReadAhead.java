package org.qimg.cli;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.qimg.BlockDevice;
import org.qimg.Extent;

/**
 * Reads a device ahead of the thread that copies it. A thread of its own walks the device's map and,
 * extent by extent, reads what a {@link Plan} asks for into a few buffers, while the calling thread
 * takes the {@link Piece}s in order with {@link #next} (and writes them out). Memory stays bounded:
 * {@code buffers} buffers of {@code bufferSize} bytes circulate, one of them with the caller.
 *
 * <p>A failure of the reader (of the map, a read or the plan) reaches the caller from {@link #next}
 * as it was thrown. {@link #close} stops the reader and waits for it, so no thread outlives a copy
 * that failed on the writing side. The reader is stopped by a flag, not an interrupt: interrupting a
 * thread in FileChannel I/O closes the channel, and the source's channels belong to the device.
 */
final class ReadAhead implements AutoCloseable {
    /** Decides what to read of each extent of the map; runs on the reader thread, extents in order. */
    interface Plan {
        void extent(Extent extent, Reads reads) throws IOException;
    }

    /** Given to the {@link Plan}: queues reads for the caller. */
    interface Reads {
        /** Reads {@code length} bytes (at most the buffer size) at {@code offset} into the next free buffer. */
        void read(long offset, int length) throws IOException;

        /** Reads [{@code from}, {@code to}) in pieces of at most {@code piece} bytes. */
        default void readRange(long from, long to, int piece) throws IOException {
            for (long at = from; at < to; at += piece) {
                read(at, (int) Math.min(piece, to - at));
            }
        }
    }

    /**
     * One thing the caller takes, in order: the bytes read at {@code offset} in {@code data} (theirs
     * until the next call of {@link #next}), or, after the reads the plan made for it, an
     * {@code extent} of the map ({@code data} null).
     */
    record Piece(long offset, ByteBuffer data, Extent extent) {
    }

    /** The end of the map, or the reader's failure (in {@link #failure}). */
    private static final Piece END = new Piece(-1, null, null);

    /** Unwinds the reader once the caller has given up. */
    private static final class Cancelled extends RuntimeException {
        Cancelled() {
            super(null, null, false, false);
        }
    }

    private final BlockDevice source;
    private final Plan plan;
    private final BlockingQueue<ByteBuffer> free;
    private final BlockingQueue<Piece> filled;
    private final AtomicBoolean cancelled = new AtomicBoolean();
    private final Thread reader;
    private volatile Throwable failure;
    /** The buffer the caller holds, returned to the reader at the next call of {@link #next}. */
    private ByteBuffer held;
    private boolean ended;

    ReadAhead(BlockDevice source, int bufferSize, int buffers, Plan plan) {
        this.source = source;
        this.plan = plan;
        this.free = new ArrayBlockingQueue<>(buffers);
        // Room for every buffer and some extents, so the reader runs ahead over holes too.
        this.filled = new ArrayBlockingQueue<>(buffers + 16);
        for (int i = 0; i < buffers; i++) {
            free.add(ByteBuffer.allocateDirect(bufferSize));
        }
        this.reader = Thread.ofPlatform().name("qimg-read-ahead").daemon().start(this::run);
    }

    /** The next piece in order; null at the end. A failure of the reader is thrown as it was. */
    Piece next() throws IOException {
        if (held != null) {
            free.add(held);
            held = null;
        }
        if (ended) {
            return null;
        }
        Piece piece;
        try {
            piece = filled.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("copy interrupted");
        }
        if (piece == END) {
            ended = true;
            Throwable f = failure;
            if (f != null) {
                throw rethrow(f);
            }
            return null;
        }
        held = piece.data();
        return piece;
    }

    /** Stops the reader (if it still runs) and waits for it. */
    @Override
    public void close() {
        cancelled.set(true);
        boolean interrupted = false;
        while (true) {
            try {
                reader.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private void run() {
        try {
            BlockDevice.ExtentStream extents = source.map(0, source.size());
            for (Extent e = extents.next(); e != null; e = extents.next()) {
                plan.extent(e, this::read);
                hand(new Piece(e.start(), null, e));
            }
        } catch (Cancelled c) {
            return;
        } catch (Throwable t) {
            failure = t;
        }
        try {
            hand(END);
        } catch (Cancelled c) {
            // The caller gave up; nobody waits for the end.
        }
    }

    private void read(long offset, int length) throws IOException {
        ByteBuffer buffer = null;
        try {
            while (buffer == null) {
                if (cancelled.get()) {
                    throw new Cancelled();
                }
                buffer = free.poll(50, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            throw new Cancelled();
        }
        buffer.clear().limit(length);
        source.read(offset, buffer);
        hand(new Piece(offset, buffer.flip(), null));
    }

    private void hand(Piece piece) {
        if (cancelled.get()) {
            throw new Cancelled();
        }
        try {
            while (!filled.offer(piece, 50, TimeUnit.MILLISECONDS)) {
                if (cancelled.get()) {
                    throw new Cancelled();
                }
            }
        } catch (InterruptedException e) {
            throw new Cancelled();
        }
    }

    private static IOException rethrow(Throwable failure) {
        if (failure instanceof IOException io) {
            return io;
        }
        if (failure instanceof RuntimeException re) {
            throw re;
        }
        throw (Error) failure;
    }
}
