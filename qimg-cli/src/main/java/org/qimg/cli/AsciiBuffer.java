package org.qimg.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Arrays;

/**
 * A growable byte buffer for ASCII output: appends text and decimal numbers without building
 * Strings, which matters when a map prints tens of thousands of lines.
 */
final class AsciiBuffer {
    private byte[] bytes;
    private int length;

    AsciiBuffer(int capacity) {
        bytes = new byte[Math.max(16, capacity)];
    }

    int length() {
        return length;
    }

    void clear() {
        length = 0;
    }

    private void ensure(int more) {
        if (length + more > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.max(length + more, bytes.length * 2));
        }
    }

    /** Appends {@code text}, which must be ASCII. */
    AsciiBuffer append(String text) {
        int n = text.length();
        ensure(n);
        for (int i = 0; i < n; i++) {
            bytes[length++] = (byte) text.charAt(i);
        }
        return this;
    }

    AsciiBuffer append(char c) {
        ensure(1);
        bytes[length++] = (byte) c;
        return this;
    }

    /** Appends {@code bytes}, which must be ASCII. */
    AsciiBuffer append(byte[] ascii) {
        ensure(ascii.length);
        System.arraycopy(ascii, 0, bytes, length, ascii.length);
        length += ascii.length;
        return this;
    }

    /** Appends {@code value} in decimal, as Long.toString would. */
    AsciiBuffer append(long value) {
        ensure(20);
        if (value < 0) {
            if (value == Long.MIN_VALUE) {
                return append(Long.toString(value));
            }
            bytes[length++] = '-';
            value = -value;
        }
        // 64-bit division is a runtime call under C1: divide by 10^9 at most twice, then use ints.
        if (value < 1_000_000_000L) {
            appendInt((int) value, 0);
        } else if (value < 1_000_000_000_000_000_000L) {
            long high = value / 1_000_000_000L;
            int low = (int) (value - high * 1_000_000_000L);
            if (high < 1_000_000_000L) {
                appendInt((int) high, 0);
            } else {
                long top = high / 1_000_000_000L;
                appendInt((int) top, 0);
                appendInt((int) (high - top * 1_000_000_000L), 9);
            }
            appendInt(low, 9);
        } else {
            return append(Long.toString(value));
        }
        return this;
    }

    /** Appends {@code value} (0 <= value < 10^9), padded with zeroes to {@code width} digits. */
    private void appendInt(int value, int width) {
        int digits = 1;
        for (int v = value; v >= 10; v /= 10) {
            digits++;
        }
        digits = Math.max(digits, width);
        int at = length + digits;
        length = at;
        for (int i = 0; i < digits; i++) {
            bytes[--at] = (byte) ('0' + value % 10);
            value /= 10;
        }
    }

    void appendTo(AsciiBuffer other) {
        other.ensure(length);
        System.arraycopy(bytes, 0, other.bytes, other.length, length);
        other.length += length;
    }

    void writeTo(OutputStream out) throws IOException {
        out.write(bytes, 0, length);
    }

    @Override
    public String toString() {
        return new String(bytes, 0, length, java.nio.charset.StandardCharsets.US_ASCII);
    }
}
