package org.qimg.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.ImageException;
import org.qimg.map.ChainWalker;

/**
 * A chain of layers served as one {@link BlockDevice}. Reads, seeks and maps run concurrently under
 * a read lock. So do writes over data the top image owns already (and all writes to a raw top):
 * they change no metadata, and a range gate orders the overlapping ones. Every other change
 * (allocation, copy-on-write, zeroes, discard, flush, resize) takes the write lock.
 */
public final class ChainDevice implements BlockDevice {
    private final Layer top;
    private final List<Layer> layers = new ArrayList<>();
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final RangeGate gate = new RangeGate();
    private final Qcow2Writer writer;
    private final boolean writable;
    private boolean closed;

    public ChainDevice(Layer top) throws IOException {
        this.top = top;
        for (Layer layer = top; layer != null; layer = layer.backing()) {
            layers.add(layer);
        }
        if (top instanceof Qcow2Layer q && q.writable()) {
            writer = new Qcow2Writer(q, this::readBelow, this::belowIsZero, this::readsZero);
            writable = true;
        } else {
            writer = null;
            writable = top instanceof RawLayer r && r.file().isWritable();
        }
    }

    /** Reads what the layers under the top supply: their content, zeroes past their end. */
    private void readBelow(long guestOffset, ByteBuffer dst) throws IOException {
        Layer below = top.backing();
        if (below == null) {
            zero(dst);
            return;
        }
        long inside = Math.max(0, Math.min(dst.remaining(), below.size() - guestOffset));
        if (inside > 0) {
            ByteBuffer part = dst.slice(dst.position(), (int) inside);
            readFrom(below, guestOffset, part);
            dst.position(dst.position() + (int) inside);
        }
        zero(dst);
    }

    /** Whether the layers under the top read as zero by metadata over a range (zero past their end). */
    private boolean belowIsZero(long guestOffset, long length) throws IOException {
        Layer below = top.backing();
        return below == null || guestOffset >= below.size() || readsZero(below, guestOffset, length);
    }

    /** Whether the whole chain reads as zero by metadata over a range. */
    private boolean readsZero(long guestOffset, long length) throws IOException {
        return readsZero(top, guestOffset, length);
    }

    private static boolean readsZero(Layer from, long guestOffset, long length) throws IOException {
        ChainWalker walker = new ChainWalker(from);
        long end = Math.min(from.size(), guestOffset + length);
        for (long at = guestOffset; at < end; ) {
            Extent e = walker.extentAt(at, end - at);
            if (!e.zero()) {
                return false;
            }
            at = e.end();
        }
        return true;
    }

    private static void zero(ByteBuffer dst) {
        while (dst.hasRemaining()) {
            dst.put((byte) 0);
        }
    }

    /** The layers, top first. */
    public List<Layer> layers() {
        return List.copyOf(layers);
    }

    public Layer top() {
        return top;
    }

    @Override
    public long size() {
        return top.size();
    }

    @Override
    public boolean isReadOnly() {
        return !writable;
    }

    private void checkRange(long guestOffset, long length) {
        if (guestOffset < 0 || length < 0 || guestOffset > size() || length > size() - guestOffset) {
            throw new IndexOutOfBoundsException("range [" + guestOffset + ", " + (guestOffset + length)
                    + ") lies outside the device of " + size() + " bytes");
        }
    }

    @Override
    public void read(long guestOffset, ByteBuffer dst) throws IOException {
        lock.readLock().lock();
        try {
            checkOpen();
            checkRange(guestOffset, dst.remaining());
            readFrom(top, guestOffset, dst);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Reads through the chain that starts at {@code from}; the range lies inside it. */
    private void readFrom(Layer from, long guestOffset, ByteBuffer dst) throws IOException {
        ChainWalker walker = new ChainWalker(from);
        int base = layers.indexOf(from);
        long at = guestOffset;
        while (dst.hasRemaining()) {
            Extent extent = walker.extentAt(at, dst.remaining());
            int n = (int) extent.length();
            ByteBuffer part = dst.slice(dst.position(), n);
            if (extent.zero() || !extent.data()) {
                zero(part);
            } else {
                layers.get(base + extent.depth()).readData(at, part);
            }
            dst.position(dst.position() + n);
            at += n;
        }
    }

    private void checkOpen() throws IOException {
        if (closed) {
            throw new ImageException(top.name() + ": the device is closed");
        }
    }

    private void checkWritable(long guestOffset, long length) throws IOException {
        checkOpen();
        if (!writable) {
            throw new ImageException(top.name() + ": the image is open read-only");
        }
        if (guestOffset < 0 || length < 0 || guestOffset > size() || length > size() - guestOffset) {
            throw new ImageException(top.name() + ": range [" + guestOffset + ", " + (guestOffset + length)
                    + ") lies outside the device of " + size() + " bytes");
        }
    }

    @Override
    public void write(long guestOffset, ByteBuffer src) throws IOException {
        // Writes over data the top image owns change no metadata: they run under the shared lock,
        // beside reads and each other, ordered among themselves by the gate.
        lock.readLock().lock();
        try {
            checkWritable(guestOffset, src.remaining());
            long[] runs = writer != null ? writer.inPlaceRuns(guestOffset, src.remaining()) : null;
            if (runs != null || writer == null) {
                long[] entered = gate.enter(guestOffset, guestOffset + src.remaining());
                try {
                    if (runs != null) {
                        writer.writeRuns(runs, src);
                    } else {
                        ((RawLayer) top).file().write(guestOffset, src);
                    }
                } finally {
                    gate.leave(entered);
                }
                return;
            }
        } finally {
            lock.readLock().unlock();
        }
        lock.writeLock().lock();
        try {
            checkWritable(guestOffset, src.remaining());
            writer.write(guestOffset, src);
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        lock.writeLock().lock();
        try {
            checkWritable(guestOffset, length);
            if (writer != null) {
                writer.writeZeroes(guestOffset, length, mayUnmap);
            } else {
                writeRawZeroes(guestOffset, length);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    private void writeRawZeroes(long guestOffset, long length) throws IOException {
        ByteBuffer zeroes = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
        for (long at = guestOffset; at < guestOffset + length; ) {
            int n = (int) Math.min(zeroes.capacity(), guestOffset + length - at);
            ((RawLayer) top).file().write(at, zeroes.clear().limit(n));
            at += n;
        }
    }

    @Override
    public void discard(long guestOffset, long length) throws IOException {
        lock.writeLock().lock();
        try {
            checkWritable(guestOffset, length);
            if (writer != null) {
                writer.discard(guestOffset, length);
            } else {
                writeRawZeroes(guestOffset, length);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public long compressionUnit() {
        return writer != null && !((Qcow2Layer) top).header().hasDataFile() ? ((Qcow2Layer) top).header().clusterSize() : 0;
    }

    @Override
    public void writeCompressed(long guestOffset, ByteBuffer unit) throws IOException {
        long size = compressionUnit();
        if (size == 0) {
            throw new ImageException(top.name() + ": the image cannot store compressed data");
        }
        if (guestOffset % size != 0 || unit.remaining() != size) {
            throw new IllegalArgumentException("compressed writes take whole clusters of " + size + " bytes");
        }
        byte[] data = new byte[(int) size];
        unit.get(data);
        // Compressed before the lock is taken: writers on several threads compress in parallel.
        byte[] packed = writer.pack(data);
        lock.writeLock().lock();
        try {
            checkWritable(guestOffset, data.length);
            writer.writeCompressed(guestOffset / size, data, packed);
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public void flush() throws IOException {
        lock.writeLock().lock();
        try {
            checkOpen();
            if (writer != null) {
                writer.flush();
            } else if (writable) {
                ((RawLayer) top).file().sync();
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public void resize(long newSize) throws IOException {
        lock.writeLock().lock();
        try {
            checkWritable(0, 0);
            if (writer != null) {
                writer.resize(newSize, from -> from >= size() || unlockedSeek(from, false).isEmpty());
            } else {
                RawLayer raw = (RawLayer) top;
                raw.file().lockForResize();
                raw.file().setLength(newSize);
                raw.refreshSize();
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public OptionalLong seekData(long guestOffset) throws IOException {
        return seek(guestOffset, false);
    }

    @Override
    public OptionalLong seekHole(long guestOffset) throws IOException {
        return seek(guestOffset, true);
    }

    private OptionalLong seek(long guestOffset, boolean hole) throws IOException {
        lock.readLock().lock();
        try {
            checkOpen();
            return unlockedSeek(guestOffset, hole);
        } finally {
            lock.readLock().unlock();
        }
    }

    private OptionalLong unlockedSeek(long guestOffset, boolean hole) throws IOException {
        if (guestOffset < 0) {
            throw new IllegalArgumentException("seek offset " + guestOffset + " is negative (EINVAL)");
        }
        if (guestOffset >= size()) {
            return OptionalLong.empty();
        }
        Extent found = new ChainWalker(top).find(guestOffset, hole);
        if (found == null) {
            return hole ? OptionalLong.of(size()) : OptionalLong.empty();
        }
        return OptionalLong.of(Math.max(guestOffset, found.start()));
    }

    @Override
    public Extent extentAt(long guestOffset, long maxLength) throws IOException {
        if (maxLength <= 0) {
            throw new IllegalArgumentException("extent length " + maxLength + " must be positive");
        }
        lock.readLock().lock();
        try {
            checkOpen();
            return new ChainWalker(top).extentAt(guestOffset, maxLength);
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override
    public ExtentStream map(long guestOffset, long length) {
        if (guestOffset < 0 || length < 0) {
            throw new IllegalArgumentException("map range [" + guestOffset + ", +" + length + ") is negative");
        }
        long from = Math.min(guestOffset, size());
        long to = Math.min(size(), from + Math.min(length, Long.MAX_VALUE - from));
        ExtentStream stream = new ChainWalker(top).stream(from, to);
        return () -> {
            lock.readLock().lock();
            try {
                checkOpen();
                return stream.next();
            } finally {
                lock.readLock().unlock();
            }
        };
    }

    @Override
    public void close() throws IOException {
        lock.writeLock().lock();
        try {
            if (closed) {
                return;
            }
            if (writer != null) {
                writer.flush();
            } else if (writable) {
                ((RawLayer) top).file().sync();
            }
        } finally {
            closed = true;
            lock.writeLock().unlock();
        }
        IOException failure = null;
        for (Layer layer : layers) {
            try {
                layer.close();
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }
}
