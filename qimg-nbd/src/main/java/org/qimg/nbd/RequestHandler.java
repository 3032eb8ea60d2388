package org.qimg.nbd;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.ImageException;

/**
 * Serves one request of the transmission phase against the export's {@link BlockDevice} and sends
 * its reply. Checks follow proto.md: unknown commands and flags get EINVAL; a write to a read-only
 * export EPERM; a write past the end ENOSPC, a read, trim, cache or block status past the end EINVAL;
 * a failure of the engine EIO. Safe to call from many threads at once.
 *
 * <p>An {@link IOException} thrown from here means the reply could not be sent: the connection is
 * gone or its stream is broken, and the caller drops it.
 */
final class RequestHandler {
    private static final System.Logger LOG = System.getLogger(RequestHandler.class.getName());
    /** Bounds the chunk headers of one read reply: a run per 512 bytes of a maximal read, and then some. */
    private static final int MAX_CHUNKS_PER_READ = (Nbd.MAX_BLOCK_SIZE / 512) + 2;

    private final Session session;
    private final BlockDevice device;
    private final long size;
    private final boolean structured;
    private final ReplyWriter out;
    private final BufferPool pool;

    RequestHandler(Session session, ReplyWriter out, BufferPool pool) {
        this.session = session;
        this.device = session.export().device();
        this.size = device.size();
        this.structured = session.structuredReplies();
        this.out = out;
        this.pool = pool;
    }

    /** A request refused with an error value and a message for a human. */
    private static final class Refusal extends Exception {
        private static final long serialVersionUID = 1L;
        final NbdError error;

        Refusal(NbdError error, String message) {
            super(message, null, false, false);
            this.error = error;
        }
    }

    void handle(Request request) throws IOException {
        try {
            NbdCommand command = request.command();
            if (command == null) {
                throw new Refusal(NbdError.EINVAL, "unknown command type " + request.type());
            }
            if ((request.flags() & ~command.allowedFlags) != 0
                    || (request.has(Nbd.CMD_FLAG_DF) && !structured)) {
                throw new Refusal(NbdError.EINVAL, "flags 0x" + Integer.toHexString(request.flags())
                        + " are not valid for NBD_CMD_" + command);
            }
            switch (command) {
                case READ -> read(request);
                case WRITE -> write(request);
                case FLUSH -> flush(request);
                case TRIM -> trim(request);
                case CACHE -> cache(request);
                case WRITE_ZEROES -> writeZeroes(request);
                case BLOCK_STATUS -> blockStatus(request);
                case DISC -> throw new IllegalStateException("NBD_CMD_DISC has no reply");
            }
        } catch (Refusal refusal) {
            sendError(request, refusal.error, refusal.getMessage());
        }
    }

    // ---- commands -------------------------------------------------------------------------------

    private void read(Request request) throws IOException, Refusal {
        if (request.length() > Nbd.MAX_BLOCK_SIZE) {
            throw new Refusal(NbdError.EINVAL, "read of " + request.length() + " bytes exceeds the maximum block size "
                    + Nbd.MAX_BLOCK_SIZE);
        }
        checkInside(request, NbdError.EINVAL);
        long offset = request.offset();
        int length = (int) request.length();
        if (length == 0) {
            sendDone(request);
            return;
        }
        if (!structured) {
            readSimple(request, offset, length);
            return;
        }
        List<Run> runs = runs(offset, length);
        if ((request.has(Nbd.CMD_FLAG_DF) && !(runs.size() == 1 && runs.getFirst().hole))
                || runs.size() > MAX_CHUNKS_PER_READ) {
            // "If this flag is set, the server MUST send at most one content chunk": zeroes included.
            // A range fragmented beyond reason goes the same way: one chunk, holes as zeroes.
            runs = List.of(new Run(offset, length, false));
        }
        ByteBuffer data = null;
        ByteBuffer headers = pool.acquire(runs.size() * 32);
        try {
            boolean anyData = runs.stream().anyMatch(run -> !run.hole);
            if (anyData) {
                data = pool.acquire(length);
                for (Run run : runs) {
                    if (!run.hole) {
                        ByteBuffer part = data.slice((int) (run.start - offset), run.length);
                        engine(request, () -> device.read(run.start, part));
                    }
                }
            }
            ByteBuffer[] parts = new ByteBuffer[runs.size() * (anyData ? 2 : 1)];
            int p = 0;
            for (int i = 0; i < runs.size(); i++) {
                Run run = runs.get(i);
                boolean done = i == runs.size() - 1;
                ByteBuffer header = headers.slice(i * 32, run.hole ? 32 : 28);
                if (run.hole) {
                    ReplyWriter.putChunkHeader(header, done, NbdReplyType.OFFSET_HOLE, request.cookie(), 12)
                            .putLong(run.start).putInt(run.length);
                    parts[p++] = header.flip();
                } else {
                    ReplyWriter.putChunkHeader(header, done, NbdReplyType.OFFSET_DATA, request.cookie(), 8 + run.length)
                            .putLong(run.start);
                    parts[p++] = header.flip();
                    parts[p++] = data.slice((int) (run.start - offset), run.length);
                }
            }
            out.send(p == parts.length ? parts : java.util.Arrays.copyOf(parts, p));
        } finally {
            pool.release(data);
            pool.release(headers);
        }
    }

    /** Without structured replies: a simple reply followed by every byte, zeroes included. */
    private void readSimple(Request request, long offset, int length) throws IOException, Refusal {
        ByteBuffer data = pool.acquire(length);
        try {
            engine(request, () -> device.read(offset, data.duplicate()));
            ByteBuffer header = ByteBuffer.allocate(Nbd.SIMPLE_REPLY_HEADER_BYTES);
            ReplyWriter.putSimpleHeader(header, request.cookie(), 0).flip();
            out.send(header, data);
        } finally {
            pool.release(data);
        }
    }

    /** A piece of a read: data to send, or a hole ({@link Extent#zero()}) to announce as OFFSET_HOLE. */
    private record Run(long start, int length, boolean hole) {
    }

    /** The read range as alternating data and hole runs, from the engine's extents. */
    private List<Run> runs(long offset, int length) throws IOException, Refusal {
        List<Run> runs = new ArrayList<>();
        long[] at = {offset};
        engine(null, () -> {
            BlockDevice.ExtentStream extents = device.map(offset, length);
            for (Extent extent = extents.next(); extent != null; extent = extents.next()) {
                boolean hole = extent.zero();
                int n = (int) extent.length();
                if (!runs.isEmpty() && runs.getLast().hole == hole) {
                    Run last = runs.removeLast();
                    runs.add(new Run(last.start, last.length + n, hole));
                } else {
                    runs.add(new Run(extent.start(), n, hole));
                }
                at[0] = extent.end();
            }
        });
        if (at[0] != offset + length) {
            throw new Refusal(NbdError.EIO, "the block status of [" + offset + ", " + (offset + length)
                    + ") ends at " + at[0]);
        }
        return runs;
    }

    private void write(Request request) throws IOException, Refusal {
        checkWritable(request);
        checkInside(request, NbdError.ENOSPC);
        ByteBuffer payload = request.payload().duplicate();
        engine(request, () -> device.write(request.offset(), payload));
        fua(request);
        sendDone(request);
    }

    private void flush(Request request) throws IOException, Refusal {
        engine(request, device::flush);
        sendDone(request);
    }

    private void trim(Request request) throws IOException, Refusal {
        checkWritable(request);
        checkInside(request, NbdError.EINVAL);
        if (request.length() > 0) {
            engine(request, () -> device.discard(request.offset(), request.length()));
            fua(request);
        }
        sendDone(request);
    }

    private void writeZeroes(Request request) throws IOException, Refusal {
        checkWritable(request);
        if (request.has(Nbd.CMD_FLAG_FAST_ZERO)) {
            // The device cannot tell in advance whether zeroing is faster than writing: "the server
            // SHOULD fail a fast zero request with NBD_ENOTSUP if [it] cannot quickly determine in
            // advance whether proceeding with the request would be fast".
            throw new Refusal(NbdError.ENOTSUP, "fast zeroing is not available");
        }
        checkInside(request, NbdError.ENOSPC);
        if (request.length() > 0) {
            engine(request, () -> device.writeZeroes(request.offset(), request.length(),
                    !request.has(Nbd.CMD_FLAG_NO_HOLE)));
            fua(request);
        }
        sendDone(request);
    }

    /** NBD_CMD_CACHE: walks the range's metadata so that the tables a later read needs are loaded. */
    private void cache(Request request) throws IOException, Refusal {
        if (request.length() > Nbd.MAX_BLOCK_SIZE) {
            throw new Refusal(NbdError.EINVAL, "cache of " + request.length() + " bytes exceeds the maximum block size");
        }
        checkInside(request, NbdError.EINVAL);
        engine(request, () -> {
            BlockDevice.ExtentStream extents = device.map(request.offset(), request.length());
            while (extents.next() != null) {
                // loading the metadata is the point
            }
        });
        sendDone(request);
    }

    private void blockStatus(Request request) throws IOException, Refusal {
        List<MetaContext> contexts = session.contexts();
        if (!structured || contexts.isEmpty()) {
            throw new Refusal(NbdError.EINVAL, "no metadata context was selected with NBD_OPT_SET_META_CONTEXT");
        }
        if (request.length() == 0) {
            throw new Refusal(NbdError.EINVAL, "block status of 0 bytes");
        }
        checkInside(request, NbdError.EINVAL);
        BlockStatus[] result = new BlockStatus[1];
        engine(request, () -> result[0] = BlockStatus.of(device, contexts, request.offset(), request.length(),
                request.has(Nbd.CMD_FLAG_REQ_ONE)));
        BlockStatus status = result[0];
        if (status.descriptors(0) == 0) {
            throw new Refusal(NbdError.EIO, "no extent at offset " + request.offset());
        }
        ByteBuffer reply = pool.acquire((int) status.replyBytes());
        try {
            for (int c = 0; c < contexts.size(); c++) {
                int n = status.descriptors(c);
                ReplyWriter.putChunkHeader(reply, c == contexts.size() - 1, NbdReplyType.BLOCK_STATUS,
                        request.cookie(), 4 + 8 * n);
                reply.putInt(contexts.get(c).id());
                for (int d = 0; d < n; d++) {
                    reply.putInt((int) status.length(c, d)).putInt(status.status(c, d));
                }
            }
            out.send(reply.flip());
        } finally {
            pool.release(reply);
        }
    }

    // ---- checks and replies ---------------------------------------------------------------------

    private void checkInside(Request request, NbdError error) throws Refusal {
        if (!request.inside(size)) {
            throw new Refusal(error, "[" + Long.toUnsignedString(request.offset()) + ", +" + request.length()
                    + ") lies past the end of the export (" + size + " bytes)");
        }
    }

    private void checkWritable(Request request) throws Refusal {
        if (session.export().writesRefused()) {
            throw new Refusal(NbdError.EPERM, "the export is read-only");
        }
    }

    /** "MUST NOT send its reply to that command until all write operations ... have been persisted." */
    private void fua(Request request) throws Refusal {
        if (request.has(Nbd.CMD_FLAG_FUA)) {
            engine(request, device::flush);
        }
    }

    @FunctionalInterface
    private interface EngineCall {
        void run() throws IOException;
    }

    /**
     * Runs a call into the engine; its failures become EIO (ImageException, I/O errors, and also
     * unexpected runtime exceptions, which are logged: a bug must not take the connection down).
     */
    private static void engine(Request request, EngineCall call) throws Refusal {
        try {
            call.run();
        } catch (ImageException e) {
            throw new Refusal(NbdError.EIO, e.getMessage());
        } catch (IOException e) {
            throw new Refusal(NbdError.EIO, e.toString());
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "engine failure serving " + (request == null ? "a read" : request), e);
            throw new Refusal(NbdError.EIO, e.toString());
        }
    }

    /** Success without payload: a simple reply, or NBD_REPLY_TYPE_NONE with the DONE flag. */
    private void sendDone(Request request) throws IOException {
        ByteBuffer reply = ByteBuffer.allocate(Nbd.CHUNK_HEADER_BYTES);
        if (structured) {
            ReplyWriter.putChunkHeader(reply, true, NbdReplyType.NONE, request.cookie(), 0);
        } else {
            ReplyWriter.putSimpleHeader(reply, request.cookie(), 0);
        }
        out.send(reply.flip());
    }

    /**
     * An error: with structured replies an NBD_REPLY_TYPE_ERROR chunk carrying the message (READ must
     * be answered that way), else a simple reply with the error value.
     */
    private void sendError(Request request, NbdError error, String message) throws IOException {
        LOG.log(Level.DEBUG, () -> request + ": " + error + " (" + message + ")");
        if (!structured) {
            ByteBuffer reply = ByteBuffer.allocate(Nbd.SIMPLE_REPLY_HEADER_BYTES);
            out.send(ReplyWriter.putSimpleHeader(reply, request.cookie(), error.code).flip());
            return;
        }
        byte[] text = Wire.message(message == null ? "" : message);
        ByteBuffer reply = ByteBuffer.allocate(Nbd.CHUNK_HEADER_BYTES + 6 + text.length);
        ReplyWriter.putChunkHeader(reply, true, NbdReplyType.ERROR, request.cookie(), 6 + text.length)
                .putInt(error.code).putShort((short) text.length).put(text);
        out.send(reply.flip());
    }
}
