package org.qimg.map;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.OptionalLong;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;

/** The engine's invariants over random images of the corpus and random offsets. */
class SeekProperties {
    private static List<CorpusImage> images;
    private static List<BlockDevice> devices;

    @BeforeContainer
    static void openCorpus() throws IOException {
        images = Corpus.get().images();
        devices = new java.util.ArrayList<>();
        for (CorpusImage image : images) {
            devices.add(image.open());
        }
    }

    @AfterContainer
    static void closeCorpus() throws IOException {
        for (BlockDevice d : devices) {
            d.close();
        }
    }

    record Probe(int image, long offset) {
        BlockDevice device() {
            return devices.get(image);
        }

        @Override
        public String toString() {
            return images.get(image).name() + " @ " + offset;
        }
    }

    /** An image and an offset, biased towards the interesting ones: near 0, near the end, past it. */
    @Provide
    Arbitrary<Probe> probes() {
        return Arbitraries.integers().between(0, Corpus.get().images().size() - 1).flatMap(i -> {
            long size = devices.get(i).size();
            Arbitrary<Long> inside = Arbitraries.longs().between(0, Math.max(0, size + 2));
            Arbitrary<Long> edges = Arbitraries.of(0L, 1L, size - 1, size, size + 1, Long.MAX_VALUE, -1L);
            return Arbitraries.frequencyOf(
                    net.jqwik.api.Tuple.of(8, inside), net.jqwik.api.Tuple.of(2, edges))
                    .map(offset -> new Probe(i, offset));
        });
    }

    @Property(tries = 400)
    void seeksNeverGoBackAndStayInsideTheDevice(@ForAll("probes") Probe p) throws IOException {
        BlockDevice d = p.device();
        if (p.offset() < 0) {
            org.assertj.core.api.Assertions.assertThatIllegalArgumentException().isThrownBy(() -> d.seekData(p.offset()));
            org.assertj.core.api.Assertions.assertThatIllegalArgumentException().isThrownBy(() -> d.seekHole(p.offset()));
            return;
        }
        OptionalLong data = d.seekData(p.offset());
        OptionalLong hole = d.seekHole(p.offset());
        if (p.offset() >= d.size()) {
            assertThat(data).isEmpty();
            assertThat(hole).isEmpty();
            return;
        }
        assertThat(hole).isPresent();
        assertThat(hole.getAsLong()).isBetween(p.offset(), d.size());
        if (data.isPresent()) {
            assertThat(data.getAsLong()).isBetween(p.offset(), d.size() - 1);
        } else {
            // ENXIO for data: no data from here to the end, so this offset is inside the trailing hole.
            assertThat(hole.getAsLong()).isEqualTo(p.offset());
        }
        // Exactly one of the two answers is the offset itself.
        assertThat(hole.getAsLong() == p.offset()).isNotEqualTo(data.isPresent() && data.getAsLong() == p.offset());
    }

    @Property(tries = 300)
    void everyByteOfAHoleReadsAsZero(@ForAll("probes") Probe p) throws IOException {
        BlockDevice d = p.device();
        if (p.offset() < 0 || p.offset() >= d.size()) {
            return;
        }
        long hole = d.seekHole(p.offset()).orElseThrow();
        if (hole == d.size()) {
            return;
        }
        long end = d.seekData(hole).orElse(d.size());
        assertThat(end).isGreaterThan(hole);
        long first = Math.min(end - hole, 256 << 10);
        ByteBuffer head = ByteBuffer.allocate((int) first);
        d.read(hole, head);
        assertThat(allZero(head.flip())).as("hole [%d, %d) starts with zeroes", hole, end).isTrue();
        ByteBuffer tail = ByteBuffer.allocate((int) Math.min(end - hole, 4096));
        d.read(end - tail.capacity(), tail);
        assertThat(allZero(tail.flip())).as("hole [%d, %d) ends with zeroes", hole, end).isTrue();
    }

    @Provide
    Arbitrary<long[]> ranges() {
        return Arbitraries.integers().between(0, Corpus.get().images().size() - 1).flatMap(i -> {
            long size = devices.get(i).size();
            return Combinators.combine(Arbitraries.longs().between(0, size + 1), Arbitraries.longs().between(0, size + 1))
                    .as((a, b) -> new long[] {i, a, b});
        });
    }

    @Property(tries = 300)
    void mapTilesTheRangeWithoutGapOrOverlap(@ForAll("ranges") long[] r) throws IOException {
        BlockDevice d = devices.get((int) r[0]);
        long start = r[1];
        long length = r[2];
        BlockDevice.ExtentStream stream = d.map(start, length);
        long expectedEnd = Math.min(d.size(), Math.min(d.size(), start) + length);
        long at = Math.min(start, d.size());
        Extent previous = null;
        for (Extent e = stream.next(); e != null; e = stream.next()) {
            assertThat(e.start()).isEqualTo(at);
            assertThat(e.length()).isPositive();
            if (previous != null) {
                assertThat(previous.mergeableWith(e)).as("adjacent extents are merged").isFalse();
            }
            at = e.end();
            previous = e;
        }
        assertThat(at).isEqualTo(Math.max(expectedEnd, Math.min(start, d.size())));
    }

    @Property(tries = 200)
    void seekLandsOnMapBoundaries(@ForAll("probes") Probe p) throws IOException {
        BlockDevice d = p.device();
        if (p.offset() < 0 || p.offset() >= d.size()) {
            return;
        }
        Extent here = d.map(p.offset(), d.size()).next();
        OptionalLong data = d.seekData(p.offset());
        OptionalLong hole = d.seekHole(p.offset());
        if (here.zero()) {
            assertThat(hole).hasValue(p.offset());
            assertThat(data.orElse(d.size())).isEqualTo(here.end() == d.size() ? d.size() : nextNotZero(d, here));
        } else {
            assertThat(data).hasValue(p.offset());
            assertThat(hole.getAsLong()).isEqualTo(nextZero(d, here));
        }
    }

    private static long nextNotZero(BlockDevice d, Extent from) throws IOException {
        BlockDevice.ExtentStream s = d.map(from.end(), d.size());
        for (Extent e = s.next(); e != null; e = s.next()) {
            if (!e.zero()) {
                return e.start();
            }
        }
        return d.size();
    }

    private static long nextZero(BlockDevice d, Extent from) throws IOException {
        BlockDevice.ExtentStream s = d.map(from.end(), d.size());
        for (Extent e = s.next(); e != null; e = s.next()) {
            if (e.zero()) {
                return e.start();
            }
        }
        return d.size();
    }

    private static boolean allZero(ByteBuffer b) {
        while (b.hasRemaining()) {
            if (b.get() != 0) {
                return false;
            }
        }
        return true;
    }
}
