package org.qimg.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;

/**
 * The client's byte stream, buffered: messages are parsed from a small direct buffer, and large
 * payloads (NBD_CMD_WRITE data) are read straight into their destination. One reader at a time.
 */
final class WireInput {
    static final int BUFFER_BYTES = 64 << 10;

    private final ReadableByteChannel channel;
    /** Read mode: the unread bytes are between position and limit. */
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_BYTES).limit(0);

    WireInput(ReadableByteChannel channel) {
        this.channel = channel;
    }

    /**
     * True when the client closed its side between two messages. Waits for the first byte of the
     * next message otherwise.
     */
    boolean endOfStream() throws IOException {
        if (buffer.hasRemaining()) {
            return false;
        }
        return fill() < 0;
    }

    /**
     * The next {@code length} bytes ({@code <= BUFFER_BYTES}) as a view that stays valid until the
     * next call; throws EOFException when the stream ends first.
     */
    ByteBuffer read(int length) throws IOException {
        if (length > BUFFER_BYTES) {
            throw new IllegalArgumentException("message of " + length + " bytes exceeds the input buffer");
        }
        while (buffer.remaining() < length) {
            if (fill() < 0) {
                throw new EOFException("the client closed the connection in the middle of a message ("
                        + buffer.remaining() + " of " + length + " bytes)");
            }
        }
        ByteBuffer view = buffer.slice(buffer.position(), length);
        buffer.position(buffer.position() + length);
        return view;
    }

    int readInt() throws IOException {
        return read(4).getInt();
    }

    long readLong() throws IOException {
        return read(8).getLong();
    }

    /** Whether bytes of a next message are already buffered: the client is pipelining. */
    boolean hasBuffered() {
        return buffer.hasRemaining();
    }

    /** Fills {@code dst} to its limit. */
    void readFully(ByteBuffer dst) throws IOException {
        if (buffer.hasRemaining()) {
            int n = Math.min(buffer.remaining(), dst.remaining());
            dst.put(buffer.slice(buffer.position(), n));
            buffer.position(buffer.position() + n);
        }
        while (dst.hasRemaining()) {
            if (channel.read(dst) < 0) {
                throw new EOFException("the client closed the connection in the middle of a payload");
            }
        }
    }

    /** Reads and drops {@code length} bytes. */
    void skip(long length) throws IOException {
        long left = length;
        while (left > 0) {
            if (!buffer.hasRemaining() && fill() < 0) {
                throw new EOFException("the client closed the connection in the middle of a payload");
            }
            int n = (int) Math.min(left, buffer.remaining());
            buffer.position(buffer.position() + n);
            left -= n;
        }
    }

    /** Reads more bytes behind the unread ones; -1 at the end of the stream. */
    private int fill() throws IOException {
        buffer.compact();
        try {
            return channel.read(buffer);
        } finally {
            buffer.flip();
        }
    }
}
