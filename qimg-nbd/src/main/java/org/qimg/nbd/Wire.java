package org.qimg.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;

/** Small helpers for writing messages: strings as the spec defines them, whole-buffer writes. */
final class Wire {
    private Wire() {
    }

    /** A string on the wire: UTF-8, no terminating NUL. */
    static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /** A message for a human: UTF-8, cut to the spec's 4096-byte limit for strings. */
    static byte[] message(String text) {
        byte[] bytes = utf8(text);
        if (bytes.length <= Nbd.MAX_STRING) {
            return bytes;
        }
        int end = Nbd.MAX_STRING;
        while (end > 0 && (bytes[end] & 0xC0) == 0x80) {
            end--; // do not cut a UTF-8 sequence in two
        }
        return java.util.Arrays.copyOf(bytes, end);
    }

    /** Decodes {@code length} bytes at the buffer's position as UTF-8 and advances past them. */
    static String string(ByteBuffer buffer, int length) {
        byte[] bytes = new byte[length];
        buffer.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    /** Writes all of {@code buffer}: a blocking channel may still write less than asked in one call. */
    static void writeFully(WritableByteChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    /** Writes all of {@code buffers} with as few system calls as the channel allows (writev). */
    static void writeFully(GatheringByteChannel channel, ByteBuffer[] buffers) throws IOException {
        int first = 0;
        while (first < buffers.length) {
            channel.write(buffers, first, buffers.length - first);
            while (first < buffers.length && !buffers[first].hasRemaining()) {
                first++;
            }
        }
    }
}
