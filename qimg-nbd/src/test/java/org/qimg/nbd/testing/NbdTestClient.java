package org.qimg.nbd.testing;

import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A small NBD client for tests, written from proto.md: well-behaved helpers (handshake, GO, read,
 * block status) and raw access to the socket for clients that misbehave on purpose. Every wait is
 * bounded: an operation that takes longer than the timeout fails.
 */
public final class NbdTestClient implements Closeable {
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    public static final long IHAVEOPT = 0x49484156454F5054L;
    public static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;
    public static final int REQUEST_MAGIC = 0x25609513;
    public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    public static final int OPT_EXPORT_NAME = 1;
    public static final int OPT_ABORT = 2;
    public static final int OPT_LIST = 3;
    public static final int OPT_STARTTLS = 5;
    public static final int OPT_INFO = 6;
    public static final int OPT_GO = 7;
    public static final int OPT_STRUCTURED_REPLY = 8;
    public static final int OPT_LIST_META_CONTEXT = 9;
    public static final int OPT_SET_META_CONTEXT = 10;

    public static final int REP_ACK = 1;
    public static final int REP_SERVER = 2;
    public static final int REP_INFO = 3;
    public static final int REP_META_CONTEXT = 4;
    public static final int REP_ERR_UNSUP = 0x8000_0001;
    public static final int REP_ERR_INVALID = 0x8000_0003;
    public static final int REP_ERR_UNKNOWN = 0x8000_0006;
    public static final int REP_ERR_TOO_BIG = 0x8000_0009;

    public static final int CMD_READ = 0;
    public static final int CMD_WRITE = 1;
    public static final int CMD_DISC = 2;
    public static final int CMD_FLUSH = 3;
    public static final int CMD_TRIM = 4;
    public static final int CMD_CACHE = 5;
    public static final int CMD_WRITE_ZEROES = 6;
    public static final int CMD_BLOCK_STATUS = 7;

    public static final int FLAG_FUA = 1;
    public static final int FLAG_NO_HOLE = 2;
    public static final int FLAG_DF = 4;
    public static final int FLAG_REQ_ONE = 8;
    public static final int FLAG_FAST_ZERO = 16;

    public static final int TYPE_NONE = 0;
    public static final int TYPE_OFFSET_DATA = 1;
    public static final int TYPE_OFFSET_HOLE = 2;
    public static final int TYPE_BLOCK_STATUS = 5;
    public static final int TYPE_ERROR = 0x8001;

    public static final int EPERM = 1;
    public static final int EIO = 5;
    public static final int EINVAL = 22;
    public static final int ENOSPC = 28;
    public static final int ENOTSUP = 95;

    private final SocketChannel channel;
    private final Selector selector;
    private final Duration timeout;
    private boolean structured;
    private long nextCookie = 1;

    /** An option reply. */
    public record OptionReply(int option, int type, byte[] data) {
        public String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    /** A structured reply chunk (or a simple reply: type -1, payload empty, error in {@code error}). */
    public record Chunk(int flags, int type, long cookie, byte[] payload, int error) {
        public boolean done() {
            return type < 0 || (flags & 1) != 0;
        }

        public ByteBuffer buffer() {
            return ByteBuffer.wrap(payload);
        }
    }

    /** What GO / EXPORT_NAME returned. */
    public record ExportInfo(long size, int flags, List<String> contexts) {
    }

    private NbdTestClient(SocketChannel channel, Duration timeout) throws IOException {
        this.channel = channel;
        this.timeout = timeout;
        channel.configureBlocking(false);
        this.selector = Selector.open();
    }

    public static NbdTestClient connect(SocketAddress address) throws IOException {
        return connect(address, Duration.ofSeconds(10));
    }

    public static NbdTestClient connect(SocketAddress address, Duration timeout) throws IOException {
        SocketChannel channel = SocketChannel.open(address);
        return new NbdTestClient(channel, timeout);
    }

    public static NbdTestClient connect(Path socket) throws IOException {
        return connect(UnixDomainSocketAddress.of(socket));
    }

    public static NbdTestClient connect(Path socket, Duration timeout) throws IOException {
        return connect(UnixDomainSocketAddress.of(socket), timeout);
    }

    // ---- raw bytes ------------------------------------------------------------------------------

    public void send(ByteBuffer buffer) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        SelectionKey key = channel.register(selector, SelectionKey.OP_WRITE);
        try {
            while (buffer.hasRemaining()) {
                if (channel.write(buffer) == 0) {
                    waitFor(deadline);
                }
            }
        } finally {
            key.cancel();
            selector.selectNow();
        }
    }

    public void send(byte[] bytes) throws IOException {
        send(ByteBuffer.wrap(bytes));
    }

    /** Reads exactly {@code n} bytes; EOFException when the server closes first. */
    public ByteBuffer receive(int n) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(n);
        long deadline = System.nanoTime() + timeout.toNanos();
        SelectionKey key = channel.register(selector, SelectionKey.OP_READ);
        try {
            while (buffer.hasRemaining()) {
                int r = channel.read(buffer);
                if (r < 0) {
                    throw new EOFException("server closed after " + buffer.position() + " of " + n + " bytes");
                }
                if (r == 0) {
                    waitFor(deadline);
                }
            }
        } finally {
            key.cancel();
            selector.selectNow();
        }
        return buffer.flip();
    }

    /**
     * True when the server has closed the connection (reading returns end of stream, or the
     * connection was reset), after draining whatever it sent before; waits up to the timeout.
     */
    public boolean closedByServer() throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        ByteBuffer sink = ByteBuffer.allocate(65536);
        SelectionKey key = channel.register(selector, SelectionKey.OP_READ);
        try {
            while (true) {
                sink.clear();
                int r;
                try {
                    r = channel.read(sink);
                } catch (IOException e) {
                    return true; // reset
                }
                if (r < 0) {
                    return true;
                }
                if (r == 0) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        return false;
                    }
                    selector.select(Math.max(1, left / 1_000_000));
                }
            }
        } finally {
            key.cancel();
            selector.selectNow();
        }
    }

    private void waitFor(long deadline) throws IOException {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new IOException("timed out after " + timeout);
        }
        selector.select(Math.max(1, left / 1_000_000));
    }

    // ---- handshake ------------------------------------------------------------------------------

    /** Reads the greeting and sends the client flags; returns the server's handshake flags. */
    public int greet(int clientFlags) throws IOException {
        ByteBuffer greeting = receive(18);
        long magic = greeting.getLong();
        long opt = greeting.getLong();
        if (magic != NBDMAGIC || opt != IHAVEOPT) {
            throw new IOException("bad greeting");
        }
        int handshakeFlags = Short.toUnsignedInt(greeting.getShort());
        send(ByteBuffer.allocate(4).putInt(clientFlags).flip());
        return handshakeFlags;
    }

    public void sendOption(int option, byte[] data) throws IOException {
        send(ByteBuffer.allocate(16 + data.length).putLong(IHAVEOPT).putInt(option).putInt(data.length).put(data).flip());
    }

    public OptionReply readOptionReply() throws IOException {
        ByteBuffer header = receive(20);
        long magic = header.getLong();
        if (magic != OPTION_REPLY_MAGIC) {
            throw new IOException("bad option reply magic " + Long.toHexString(magic));
        }
        int option = header.getInt();
        int type = header.getInt();
        int length = header.getInt();
        byte[] data = new byte[length];
        receive(length).get(data);
        return new OptionReply(option, type, data);
    }

    /** Sends an option and collects replies up to the final one (ACK or an error). */
    public List<OptionReply> option(int option, byte[] data) throws IOException {
        sendOption(option, data);
        List<OptionReply> replies = new ArrayList<>();
        while (true) {
            OptionReply reply = readOptionReply();
            replies.add(reply);
            if (reply.type() == REP_ACK || reply.type() < 0) {
                return replies;
            }
        }
    }

    public static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** {@code u32 len, name, u16 n, u16 info[n]}. */
    public static byte[] infoRequest(String name, int... infos) {
        byte[] n = utf8(name);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
        b.putInt(n.length).put(n).putShort((short) infos.length);
        for (int i : infos) {
            b.putShort((short) i);
        }
        return b.array();
    }

    /** {@code u32 len, name, u32 n, {u32 len, query}[n]}. */
    public static byte[] metaContextRequest(String name, String... queries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] n = utf8(name);
        out.writeBytes(ByteBuffer.allocate(4).putInt(n.length).array());
        out.writeBytes(n);
        out.writeBytes(ByteBuffer.allocate(4).putInt(queries.length).array());
        for (String q : queries) {
            byte[] qb = utf8(q);
            out.writeBytes(ByteBuffer.allocate(4).putInt(qb.length).array());
            out.writeBytes(qb);
        }
        return out.toByteArray();
    }

    /**
     * The usual handshake of a modern client: fixed newstyle and no zeroes, structured replies (when
     * asked), the given metadata contexts, then GO.
     */
    public ExportInfo go(String name, boolean structuredReplies, String... contexts) throws IOException {
        greet(3);
        List<String> selected = new ArrayList<>();
        if (structuredReplies) {
            expectAck(option(OPT_STRUCTURED_REPLY, new byte[0]));
            structured = true;
            if (contexts.length > 0) {
                for (OptionReply r : option(OPT_SET_META_CONTEXT, metaContextRequest(name, contexts))) {
                    if (r.type() == REP_META_CONTEXT) {
                        selected.add(new String(r.data(), 4, r.data().length - 4, StandardCharsets.UTF_8));
                    }
                }
            }
        }
        List<OptionReply> replies = option(OPT_GO, infoRequest(name, 3));
        OptionReply last = replies.getLast();
        if (last.type() != REP_ACK) {
            throw new IOException("GO failed: " + Integer.toHexString(last.type()) + " " + last.text());
        }
        for (OptionReply r : replies) {
            ByteBuffer b = ByteBuffer.wrap(r.data());
            if (r.type() == REP_INFO && b.getShort() == 0) {
                return new ExportInfo(b.getLong(), Short.toUnsignedInt(b.getShort()), selected);
            }
        }
        throw new IOException("no NBD_INFO_EXPORT");
    }

    private static void expectAck(List<OptionReply> replies) throws IOException {
        if (replies.getLast().type() != REP_ACK) {
            throw new IOException("option failed: " + Integer.toHexString(replies.getLast().type()));
        }
    }

    // ---- transmission ---------------------------------------------------------------------------

    public long request(int flags, int type, long offset, long length, byte[] payload) throws IOException {
        long cookie = nextCookie++;
        request(flags, type, cookie, offset, length, payload);
        return cookie;
    }

    public void request(int flags, int type, long cookie, long offset, long length, byte[] payload)
            throws IOException {
        int n = payload == null ? 0 : payload.length;
        ByteBuffer b = ByteBuffer.allocate(28 + n);
        b.putInt(REQUEST_MAGIC).putShort((short) flags).putShort((short) type).putLong(cookie).putLong(offset)
                .putInt((int) length);
        if (payload != null) {
            b.put(payload);
        }
        send(b.flip());
    }

    /**
     * The next reply message: a structured chunk, or a simple reply (type -1) whose payload holds
     * {@code simpleDataLength} bytes of data when its error is 0.
     */
    public Chunk readChunk(int simpleDataLength) throws IOException {
        int magic = receive(4).getInt();
        if (magic == SIMPLE_REPLY_MAGIC) {
            ByteBuffer h = receive(12);
            int error = h.getInt();
            long cookie = h.getLong();
            byte[] data = new byte[error == 0 ? simpleDataLength : 0];
            receive(data.length).get(data);
            return new Chunk(0, -1, cookie, data, error);
        }
        if (magic != STRUCTURED_REPLY_MAGIC) {
            throw new IOException("bad reply magic " + Integer.toHexString(magic));
        }
        ByteBuffer h = receive(16);
        int flags = Short.toUnsignedInt(h.getShort());
        int type = Short.toUnsignedInt(h.getShort());
        long cookie = h.getLong();
        int length = h.getInt();
        byte[] payload = new byte[length];
        receive(length).get(payload);
        int error = (type & 0x8000) != 0 ? ByteBuffer.wrap(payload).getInt() : 0;
        return new Chunk(flags, type, cookie, payload, error);
    }

    /** The chunks of one reply, up to DONE (replies are read one request at a time). */
    public List<Chunk> readReply(int simpleDataLength) throws IOException {
        List<Chunk> chunks = new ArrayList<>();
        while (true) {
            Chunk c = readChunk(simpleDataLength);
            chunks.add(c);
            if (c.done()) {
                return chunks;
            }
        }
    }

    /** Thrown by the helpers when the server answers with an error. */
    public static final class NbdErrorReply extends IOException {
        private static final long serialVersionUID = 1L;
        public final int error;

        NbdErrorReply(int error, String message) {
            super("NBD error " + error + (message.isEmpty() ? "" : ": " + message));
            this.error = error;
        }
    }

    /** Reads {@code [offset, offset + length)}; assembles data and hole chunks. */
    public byte[] read(long offset, int length) throws IOException {
        return read(offset, length, 0);
    }

    public byte[] read(long offset, int length, int flags) throws IOException {
        long cookie = request(flags, CMD_READ, offset, length, null);
        byte[] out = new byte[length];
        boolean[] covered = new boolean[length];
        for (Chunk c : readReply(length)) {
            check(c, cookie);
            if (c.type() == -1) {
                return c.payload();
            }
            ByteBuffer p = c.buffer();
            switch (c.type()) {
                case TYPE_OFFSET_DATA -> {
                    int at = (int) (p.getLong() - offset);
                    int n = p.remaining();
                    p.get(out, at, n);
                    mark(covered, at, n);
                }
                case TYPE_OFFSET_HOLE -> {
                    int at = (int) (p.getLong() - offset);
                    int n = p.getInt();
                    mark(covered, at, n);
                }
                case TYPE_NONE -> {
                }
                default -> throw new IOException("unexpected chunk type " + c.type());
            }
        }
        for (boolean b : covered) {
            if (!b) {
                throw new IOException("read reply does not cover the request");
            }
        }
        return out;
    }

    private static void mark(boolean[] covered, int at, int n) throws IOException {
        for (int i = at; i < at + n; i++) {
            if (covered[i]) {
                throw new IOException("chunks overlap at " + i);
            }
            covered[i] = true;
        }
    }

    /** A reply without data (write, flush, trim, ...): throws NbdErrorReply on an error. */
    public void expectOk(long cookie) throws IOException {
        for (Chunk c : readReply(0)) {
            check(c, cookie);
        }
    }

    /** The error value of the reply to {@code cookie} (0 on success). */
    public int errorOf(long cookie, int simpleDataLength) throws IOException {
        int error = 0;
        for (Chunk c : readReply(simpleDataLength)) {
            if (c.cookie() != cookie) {
                throw new IOException("reply for cookie " + c.cookie() + ", expected " + cookie);
            }
            if (c.error() != 0) {
                error = c.error();
            }
        }
        return error;
    }

    private static void check(Chunk c, long cookie) throws IOException {
        if (c.cookie() != cookie) {
            throw new IOException("reply for cookie " + c.cookie() + ", expected " + cookie);
        }
        if (c.error() != 0) {
            String message = "";
            if (c.type() >= 0 && c.payload().length >= 6) {
                ByteBuffer p = c.buffer();
                p.getInt();
                int n = Short.toUnsignedInt(p.getShort());
                message = new String(c.payload(), 6, n, StandardCharsets.UTF_8);
            }
            throw new NbdErrorReply(c.error(), message);
        }
    }

    /** One context's descriptors: pairs of (length, status). */
    public record Descriptors(int contextId, long[] lengths, int[] statuses) {
        public long total() {
            long t = 0;
            for (long l : lengths) {
                t += l;
            }
            return t;
        }
    }

    public List<Descriptors> blockStatus(long offset, long length, int flags) throws IOException {
        long cookie = request(flags, CMD_BLOCK_STATUS, offset, length, null);
        List<Descriptors> result = new ArrayList<>();
        for (Chunk c : readReply(0)) {
            check(c, cookie);
            if (c.type() == TYPE_BLOCK_STATUS) {
                ByteBuffer p = c.buffer();
                int id = p.getInt();
                int n = p.remaining() / 8;
                long[] lengths = new long[n];
                int[] statuses = new int[n];
                for (int i = 0; i < n; i++) {
                    lengths[i] = Integer.toUnsignedLong(p.getInt());
                    statuses[i] = p.getInt();
                }
                result.add(new Descriptors(id, lengths, statuses));
            }
        }
        return result;
    }

    public boolean structured() {
        return structured;
    }

    public void disconnect() throws IOException {
        request(0, CMD_DISC, 0, 0, null);
    }

    @Override
    public void close() throws IOException {
        try {
            selector.close();
        } finally {
            channel.close();
        }
    }
}
