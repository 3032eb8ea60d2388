package org.qimg.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.map.ChainWalker;

/** A chain of layers served as one read-only {@link BlockDevice}. */
public final class ChainDevice implements BlockDevice {
    private final Layer top;
    private final List<Layer> layers = new ArrayList<>();

    public ChainDevice(Layer top) {
        this.top = top;
        for (Layer layer = top; layer != null; layer = layer.backing()) {
            layers.add(layer);
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
        return true;
    }

    private void checkRange(long guestOffset, long length) {
        if (guestOffset < 0 || length < 0 || guestOffset > size() || length > size() - guestOffset) {
            throw new IndexOutOfBoundsException("range [" + guestOffset + ", " + (guestOffset + length)
                    + ") lies outside the device of " + size() + " bytes");
        }
    }

    @Override
    public void read(long guestOffset, ByteBuffer dst) throws IOException {
        checkRange(guestOffset, dst.remaining());
        ChainWalker walker = new ChainWalker(top);
        long at = guestOffset;
        while (dst.hasRemaining()) {
            Extent extent = walker.extentAt(at, dst.remaining());
            int n = (int) extent.length();
            ByteBuffer part = dst.slice(dst.position(), n);
            if (extent.zero() || !extent.data()) {
                while (part.hasRemaining()) {
                    part.put((byte) 0);
                }
            } else {
                layers.get(extent.depth()).readData(at, part);
            }
            dst.position(dst.position() + n);
            at += n;
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
        return new ChainWalker(top).extentAt(guestOffset, maxLength);
    }

    @Override
    public ExtentStream map(long guestOffset, long length) {
        if (guestOffset < 0 || length < 0) {
            throw new IllegalArgumentException("map range [" + guestOffset + ", +" + length + ") is negative");
        }
        long from = Math.min(guestOffset, size());
        long to = Math.min(size(), from + Math.min(length, Long.MAX_VALUE - from));
        return new ChainWalker(top).stream(from, to);
    }

    @Override
    public void close() throws IOException {
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
