package org.qimg.cli;

import java.io.IOException;
import java.nio.ByteBuffer;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.image.ChainDevice;
import org.qimg.image.Qcow2Layer;

/**
 * The copy loop of {@code convert -O qcow2}: driven by the source's map, so holes stay holes. With a
 * backing image for the target (-B), only what the source's top image defines is copied (the rest is
 * the backing's, as in qemu-img); with compression (-c), whole clusters go through
 * {@link BlockDevice#writeCompressed} and all-zero clusters are skipped. Into an existing image (-n),
 * which does not read as zeroes, what the source reads as zero is written as zeroes (zero clusters),
 * as qemu-img does.
 */
final class Qcow2Copy {
    private static final int CHUNK = 2 << 20;
    /** Threads that each read a chunk and write it in turn ({@link ParallelCopy}): one reads while the other writes. */
    private static final int THREADS = 2;

    private final BlockDevice source;
    private final BlockDevice target;
    /** The target reads as zeroes where nothing is written (a fresh image); else zeroes are written. */
    private final boolean zeroInitialized;
    /** qemu-img's -S: zero blocks of this size are not written as data; 0 writes everything as data. */
    private final int sparse;
    private final boolean onBacking;
    private final boolean compress;
    private final Progress progress;

    Qcow2Copy(BlockDevice source, BlockDevice target, boolean zeroInitialized, int sparse, boolean onBacking,
            boolean compress, Progress progress) {
        this.source = source;
        this.target = target;
        this.zeroInitialized = zeroInitialized;
        this.sparse = sparse;
        this.onBacking = onBacking;
        this.compress = compress;
        this.progress = progress;
    }

    void run() throws IOException {
        // Zero blocks smaller than the target's unit of allocation (a cluster, or a subcluster with
        // extended L2 entries) change nothing, as the unit is written anyway: scanning by whole units
        // gives qemu-img's map with fewer comparisons.
        long allocationUnit = target instanceof ChainDevice chain && chain.top() instanceof Qcow2Layer q
                ? q.header().clusterSize() >> (q.header().extendedL2() ? 5 : 0) : 0;
        int scanBlock = (int) Math.max(sparse, allocationUnit);
        long size = source.size();
        long unit = compress ? target.compressionUnit() : 0;
        if (compress && unit == 0) {
            throw new IllegalArgumentException("Compression not supported for this target (external data file)");
        }
        // The pieces reach the sink in map order, so the writes stay in it.
        ParallelCopy.Plan plan = compress ? new CompressPlan(unit, size) : (e, r) -> {
            // -S 0 writes everything as data, zeroes included, as qemu-img does (full allocation).
            if (copied(e) && (!e.zero() || sparse == 0)) {
                r.readRange(e.start(), e.end(), CHUNK);
            }
        };
        ParallelCopy.run(source, CHUNK, THREADS, plan, new ParallelCopy.Sink() {
            @Override
            public void prepare(ParallelCopy.Piece p) throws IOException {
                // Compressed clusters are written by the threads that read them, out of map order:
                // they are compressed in parallel (the device compresses before it locks), and
                // their places in the file depend on the order, not their content.
                if (compress) {
                    write(p.offset(), p.data(), unit, scanBlock);
                }
            }

            @Override
            public void accept(ParallelCopy.Piece p) throws IOException {
                if (p.data() != null) {
                    if (!compress) {
                        write(p.offset(), p.data(), unit, scanBlock);
                    }
                    progress.update(p.offset() + p.data().remaining(), size);
                    return;
                }
                Extent e = p.extent();
                if (copied(e) && e.zero() && sparse != 0 && (onBacking || !zeroInitialized)) {
                    target.writeZeroes(e.start(), e.length(), true);
                }
                progress.update(e.end(), size);
            }
        });
        target.flush();
    }

    /**
     * Whether the extent is the target's to hold: with a backing image for the target (-B), only what
     * the source's top image defines (the rest is the backing's, as in qemu-img).
     */
    private boolean copied(Extent e) {
        return !onBacking || (e.present() && e.depth() == 0);
    }

    /**
     * Writes data read at {@code at}: with -c one cluster compressed (an all-zero one left out unless
     * the target has a backing image); else cut by -S into data, written, and zero blocks: left out of a
     * fresh image (holes, as qemu-img leaves them), zeroed in an existing one (-n), zeroed without
     * unmapping over a backing image (-B: zero clusters hide the backing's data), as qemu-img does.
     */
    private void write(long at, ByteBuffer data, long unit, int scanBlock) throws IOException {
        if (compress) {
            if (!onBacking && ZeroRuns.isZero(data)) {
                if (!zeroInitialized) {
                    target.writeZeroes(at, data.remaining(), true);
                }
            } else if (data.remaining() == unit) {
                target.writeCompressed(at, data);
            } else {
                target.write(at, data); // the partial cluster at the end of the image
            }
            return;
        }
        if (sparse == 0) {
            target.write(at, data);
            return;
        }
        ZeroRuns.split(at, data, scanBlock, new ZeroRuns.Sink() {
            @Override
            public void data(long guestOffset, ByteBuffer bytes) throws IOException {
                target.write(guestOffset, bytes);
            }

            @Override
            public void zeroes(long guestOffset, int length) throws IOException {
                if (onBacking) {
                    target.writeZeroes(guestOffset, length, false);
                } else if (!zeroInitialized) {
                    target.writeZeroes(guestOffset, length, true);
                }
            }
        });
    }

    /** With -c: every cluster that touches a data extent, each once, read whole (or to the end of the image). */
    private final class CompressPlan implements ParallelCopy.Plan {
        private final long unit;
        private final long size;
        /** Clusters before this offset were read already. */
        private long done;

        CompressPlan(long unit, long size) {
            this.unit = unit;
            this.size = size;
        }

        @Override
        public void extent(Extent e, ParallelCopy.Reads reads) {
            if (!copied(e) || e.zero()) {
                return;
            }
            long from = Math.max(e.start() / unit * unit, done);
            long to = Math.min((e.end() + unit - 1) / unit * unit, size);
            reads.readRange(from, to, (int) unit);
            done = Math.max(done, to);
        }
    }
}
