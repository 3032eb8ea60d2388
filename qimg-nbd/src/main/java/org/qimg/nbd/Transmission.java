package org.qimg.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.concurrent.Semaphore;

/**
 * The transmission phase of one connection: reads requests in order (and the payload of each
 * NBD_CMD_WRITE), and serves each on its own virtual thread, so that a slow request does not hold up
 * the others; replies leave in completion order. (A request with a small reply that arrives when
 * nothing else is in flight is served on the reader's thread: see {@link #run}.) At most {@link #MAX_IN_FLIGHT} requests and
 * {@link #BUFFER_BUDGET} bytes of buffers are in flight per connection: past that the reader waits,
 * which pushes back on the client through the socket.
 */
final class Transmission {
    private static final System.Logger LOG = System.getLogger(Transmission.class.getName());
    static final int MAX_IN_FLIGHT = 64;
    static final long BUFFER_BUDGET = 96L << 20;
    /** Reads up to this size may be served on the reader thread (see {@link #run}). */
    private static final int INLINE_READ_BYTES = 64 << 10;

    private final WireInput in;
    private final Connection connection;
    private final RequestHandler handler;
    private final BufferPool pool = new BufferPool(BUFFER_BUDGET);
    private final Semaphore slots = new Semaphore(MAX_IN_FLIGHT);

    Transmission(WireInput in, ReplyWriter out, Session session, Connection connection) {
        this.in = in;
        this.connection = connection;
        this.handler = new RequestHandler(session, out, pool);
    }

    /**
     * Serves requests until NBD_CMD_DISC, the end of the client's stream, or a protocol violation
     * (thrown); in every case, returns only when the requests in flight are done.
     */
    void run() throws IOException {
        try {
            while (!in.endOfStream()) {
                Request request = readRequest();
                if (request.command() == NbdCommand.DISC) {
                    // "The server MUST handle all outstanding requests ... and close the TCP session."
                    return;
                }
                slots.acquireUninterruptibly();
                if (slots.availablePermits() == MAX_IN_FLIGHT - 1 && !in.hasBuffered() && smallReply(request)) {
                    // A client that waits for each reply before it sends the next request (nbdinfo
                    // --map, qemu-img map) gains nothing from a thread per request and pays two
                    // hand-offs per round trip: serve it here when nothing else is in flight or
                    // buffered, and the reply is small enough not to wait for a client that is
                    // still busy sending.
                    serve(request);
                    continue;
                }
                try {
                    Thread.ofVirtual().name("nbd-request").start(() -> serve(request));
                } catch (RuntimeException | Error e) {
                    slots.release();
                    pool.release(request.payload());
                    throw e;
                }
            }
        } catch (EOFException e) {
            // The client vanished in the middle of a request: nothing to answer, and replies in
            // flight need not wait for a reader that may never come.
            LOG.log(Level.DEBUG, () -> connection + ": " + e.getMessage());
            connection.abort();
        } catch (ProtocolViolation e) {
            connection.abort(); // hard disconnect first, so that replies in flight fail at once
            throw e;
        } finally {
            slots.acquireUninterruptibly(MAX_IN_FLIGHT);
            slots.release(MAX_IN_FLIGHT);
        }
    }

    private static boolean smallReply(Request request) {
        return request.command() != NbdCommand.READ || request.length() <= INLINE_READ_BYTES;
    }

    private void serve(Request request) {
        try {
            handler.handle(request);
        } catch (IOException e) {
            // The reply could not be sent: the stream is broken, the connection is over.
            LOG.log(Level.DEBUG, () -> connection + ": reply to " + request + " failed: " + e);
            connection.abort();
        } catch (RuntimeException | Error e) {
            LOG.log(Level.WARNING, connection + ": " + request + " failed", e);
            connection.abort();
        } finally {
            pool.release(request.payload());
            slots.release();
        }
    }

    /** {@code u32 magic, u16 flags, u16 type, u64 cookie, u64 offset, u32 length[, payload]}. */
    private Request readRequest() throws IOException {
        ByteBuffer header = in.read(Nbd.REQUEST_HEADER_BYTES);
        int magic = header.getInt();
        if (magic != Nbd.REQUEST_MAGIC) {
            throw new ProtocolViolation("request magic 0x" + Integer.toHexString(magic) + " is not 0x25609513");
        }
        int flags = Short.toUnsignedInt(header.getShort());
        int type = Short.toUnsignedInt(header.getShort());
        long cookie = header.getLong();
        long offset = header.getLong();
        long length = Integer.toUnsignedLong(header.getInt());
        NbdCommand command = NbdCommand.of(type);
        ByteBuffer payload = null;
        if (command == NbdCommand.WRITE) {
            // The payload follows whatever the reply will be, so it must be read to stay in step;
            // one larger than the maximum block size is a denial of service (proto.md "Block size
            // constraints" lets the server disconnect).
            if (length > Nbd.MAX_BLOCK_SIZE) {
                throw new ProtocolViolation("write payload of " + length + " bytes exceeds the maximum block size "
                        + Nbd.MAX_BLOCK_SIZE);
            }
            payload = pool.acquire((int) length);
            try {
                in.readFully(payload);
            } catch (IOException | RuntimeException e) {
                pool.release(payload);
                throw e;
            }
            payload.flip();
        }
        return new Request(flags, type, command, cookie, offset, length, payload);
    }
}
