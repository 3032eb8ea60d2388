package org.qimg.map;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

import org.qimg.Extent;

/**
 * The one algorithm that turns the layers of a chain into extents (QEMU's block status above a
 * chain, dm-qcow2's seek walk): a run the top layer allocates is decided there; a run it leaves
 * unallocated is asked of the layer below, clipped to that layer's size; past the end of the layer
 * below, or at the bottom, it reads as zeroes.
 *
 * <p>A walker remembers the last run each layer reported, so a long unallocated run of an upper
 * layer is resolved once, not again for every extent of the layers beneath it. Not thread-safe: one
 * walker per caller.
 */
public final class ChainWalker {
    private final List<LayerMap> layers = new ArrayList<>();
    private final long size;
    private final long[] cachedStart;
    private final Run[] cachedRun;

    public ChainWalker(LayerMap top) {
        for (LayerMap layer = top; layer != null; layer = layer.backing()) {
            layers.add(layer);
        }
        this.size = top.size();
        this.cachedStart = new long[layers.size()];
        this.cachedRun = new Run[layers.size()];
    }

    public long size() {
        return size;
    }

    /**
     * The extent from {@code guestOffset} (inside the device), at most {@code maxLength} bytes. Its
     * length may be shorter than the run of equal status: callers merge.
     */
    public Extent extentAt(long guestOffset, long maxLength) throws IOException {
        if (guestOffset < 0 || guestOffset >= size) {
            throw new IllegalArgumentException("guest offset " + guestOffset + " outside [0, " + size + ")");
        }
        long length = Math.min(maxLength, size - guestOffset);
        for (int depth = 0; ; depth++) {
            LayerMap layer = layers.get(depth);
            Run run = status(depth, layer, guestOffset, length);
            length = run.length();
            if (run.allocated()) {
                return new Extent(guestOffset, length, run.data(), run.zero(), true, depth,
                        run.hostOffset() >= 0 ? layer.hostFileName() : null, run.hostOffset(), run.compressed(),
                        false);
            }
            LayerMap below = layer.backing();
            if (below == null || guestOffset >= below.size()) {
                return new Extent(guestOffset, length, false, true, false, depth,
                        run.hostOffset() >= 0 ? layer.hostFileName() : null, run.hostOffset(), false,
                        below != null);
            }
            length = Math.min(length, below.size() - guestOffset);
        }
    }

    private Run status(int depth, LayerMap layer, long guestOffset, long maxLength) throws IOException {
        Run cached = cachedRun[depth];
        long start = cachedStart[depth];
        if (cached != null && guestOffset >= start && guestOffset < start + cached.length()) {
            long skip = guestOffset - start;
            return new Run(Math.min(maxLength, cached.length() - skip), cached.data(), cached.zero(),
                    cached.hostOffset() < 0 ? -1 : cached.hostOffset() + skip, cached.compressed());
        }
        Run run = layer.status(guestOffset, maxLength);
        if (run.length() <= 0 || run.length() > maxLength) {
            throw new IllegalStateException("layer " + depth + " returned a run of " + run.length()
                    + " bytes for at most " + maxLength + " at " + guestOffset);
        }
        cachedRun[depth] = run;
        cachedStart[depth] = guestOffset;
        return run;
    }

    /**
     * The first extent from {@code guestOffset} whose zero flag equals {@code zero}, or null when there
     * is none before the end of the device. Used for seekHole (zero) and seekData (not zero).
     */
    public Extent find(long guestOffset, boolean zero) throws IOException {
        long at = guestOffset;
        while (at < size) {
            Extent extent = extentAt(at, size - at);
            if (extent.zero() == zero) {
                return extent;
            }
            at = extent.end();
        }
        return null;
    }

    /** A stream of merged extents over {@code [from, to)}. */
    public org.qimg.BlockDevice.ExtentStream stream(long from, long to) {
        return new org.qimg.BlockDevice.ExtentStream() {
            private long at = from;
            private Extent held;

            @Override
            public Extent next() throws IOException {
                if (held == null) {
                    if (at >= to) {
                        return null;
                    }
                    held = extentAt(at, to - at);
                    at = held.end();
                }
                while (at < to) {
                    Extent next = extentAt(at, to - at);
                    at = next.end();
                    if (!held.mergeableWith(next)) {
                        Extent out = held;
                        held = next;
                        return out;
                    }
                    held = held.merge(next);
                }
                Extent out = held;
                held = null;
                return out;
            }
        };
    }
}
