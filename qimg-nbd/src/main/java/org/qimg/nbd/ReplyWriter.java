package org.qimg.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Writes the replies of one connection. Requests are served concurrently, so replies leave in any
 * order, but each reply goes out whole, under a lock, so that messages never interleave on the wire.
 * A failed write leaves the stream unusable: the caller drops the connection.
 */
final class ReplyWriter {
    private final GatheringByteChannel channel;
    private final ReentrantLock lock = new ReentrantLock();

    ReplyWriter(GatheringByteChannel channel) {
        this.channel = channel;
    }

    /** Sends {@code parts}, one after the other, as one uninterrupted piece of the stream. */
    void send(ByteBuffer... parts) throws IOException {
        lock.lock();
        try {
            Wire.writeFully(channel, parts);
        } finally {
            lock.unlock();
        }
    }

    /** Simple reply: {@code u32 magic, u32 error, u64 cookie} (16 bytes). */
    static ByteBuffer putSimpleHeader(ByteBuffer buffer, long cookie, int error) {
        return buffer.putInt(Nbd.SIMPLE_REPLY_MAGIC).putInt(error).putLong(cookie);
    }

    /** Structured reply chunk: {@code u32 magic, u16 flags, u16 type, u64 cookie, u32 length} (20 bytes). */
    static ByteBuffer putChunkHeader(ByteBuffer buffer, boolean done, NbdReplyType type, long cookie, int length) {
        return buffer.putInt(Nbd.STRUCTURED_REPLY_MAGIC).putShort((short) (done ? Nbd.REPLY_FLAG_DONE : 0))
                .putShort((short) type.code).putLong(cookie).putInt(length);
    }
}
