package org.qimg.nbd.testing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.ImageException;

/**
 * A writable {@link BlockDevice} in memory, for the server's write path (the qcow2 engine is
 * read-only for now). Every byte is data; it records the calls that change it, and reads of
 * {@code [failFrom, failTo)} fail with an ImageException.
 */
public final class MemoryDevice implements BlockDevice {
    private final byte[] bytes;
    private final List<String> calls = new ArrayList<>();
    private volatile long failFrom = -1;
    private volatile long failTo = -1;

    public MemoryDevice(int size) {
        this.bytes = new byte[size];
    }

    public MemoryDevice failReads(long from, long to) {
        this.failFrom = from;
        this.failTo = to;
        return this;
    }

    public synchronized byte[] content() {
        return bytes.clone();
    }

    public synchronized void fill(byte[] content) {
        System.arraycopy(content, 0, bytes, 0, content.length);
    }

    /** The calls that changed the device or flushed it, e.g. "write 0 512", "zeroes 0 4096 unmap", "flush". */
    public synchronized List<String> calls() {
        return List.copyOf(calls);
    }

    @Override
    public long size() {
        return bytes.length;
    }

    @Override
    public boolean isReadOnly() {
        return false;
    }

    @Override
    public synchronized void read(long guestOffset, ByteBuffer dst) throws IOException {
        int n = dst.remaining();
        if (failFrom >= 0 && guestOffset < failTo && guestOffset + n > failFrom) {
            throw new ImageException("memory: injected read failure at " + guestOffset);
        }
        dst.put(bytes, (int) guestOffset, n);
    }

    @Override
    public OptionalLong seekData(long guestOffset) {
        return guestOffset < bytes.length ? OptionalLong.of(guestOffset) : OptionalLong.empty();
    }

    @Override
    public OptionalLong seekHole(long guestOffset) {
        return guestOffset < bytes.length ? OptionalLong.of(bytes.length) : OptionalLong.empty();
    }

    @Override
    public Extent extentAt(long guestOffset, long maxLength) {
        return new Extent(guestOffset, Math.min(maxLength, bytes.length - guestOffset), true, false, true, 0,
                null, -1, false, false);
    }

    @Override
    public ExtentStream map(long guestOffset, long length) {
        long end = Math.min(bytes.length, guestOffset + length);
        return new ExtentStream() {
            private boolean done = guestOffset >= end;

            @Override
            public Extent next() {
                if (done) {
                    return null;
                }
                done = true;
                return extentAt(guestOffset, end - guestOffset);
            }
        };
    }

    @Override
    public synchronized void write(long guestOffset, ByteBuffer src) {
        calls.add("write " + guestOffset + " " + src.remaining());
        src.get(bytes, (int) guestOffset, src.remaining());
    }

    @Override
    public synchronized void writeZeroes(long guestOffset, long length, boolean mayUnmap) {
        calls.add("zeroes " + guestOffset + " " + length + (mayUnmap ? " unmap" : ""));
        java.util.Arrays.fill(bytes, (int) guestOffset, (int) (guestOffset + length), (byte) 0);
    }

    @Override
    public synchronized void discard(long guestOffset, long length) {
        calls.add("discard " + guestOffset + " " + length);
        java.util.Arrays.fill(bytes, (int) guestOffset, (int) (guestOffset + length), (byte) 0);
    }

    @Override
    public synchronized void flush() {
        calls.add("flush");
    }

    @Override
    public void close() {
    }
}
