package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.Images;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/** The loop of the copies: pieces in map order, one at a time, failures on any side, no thread left. */
class ParallelCopyTest {
    @TempDir
    Path dir;

    @AfterEach
    void noHelperLeft() {
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().startsWith("qimg-copy-"));
    }

    @Test
    void piecesComeInMapOrderWithTheDeviceBytes() throws IOException {
        for (int threads : new int[] {1, 2, 4}) {
            try (BlockDevice device = Corpus.get().image("chain-3").open()) {
                long[] extentsEnd = {0}; // where the extents handed so far end
                long[] readEnd = {0};    // where the reads of the current extent end
                ParallelCopy.run(device, 64 << 10, threads, (e, r) -> {
                    if (!e.zero()) {
                        r.readRange(e.start(), e.end(), 48 << 10);
                    }
                }, p -> {
                    if (p.data() == null) {
                        Extent e = p.extent();
                        assertThat(e.start()).isEqualTo(extentsEnd[0]);
                        assertThat(readEnd[0]).isEqualTo(e.zero() ? extentsEnd[0] : e.end());
                        extentsEnd[0] = e.end();
                        readEnd[0] = extentsEnd[0];
                        return;
                    }
                    assertThat(p.offset()).isEqualTo(readEnd[0]);
                    assertThat(p.data().remaining()).isBetween(1, 48 << 10);
                    ByteBuffer expected = ByteBuffer.allocate(p.data().remaining());
                    device.read(p.offset(), expected);
                    assertThat(p.data()).isEqualTo(expected.flip());
                    readEnd[0] += p.data().remaining();
                });
                assertThat(extentsEnd[0]).as("%d threads", threads).isEqualTo(device.size());
            }
        }
    }

    @Test
    void theSinkTakesOnePieceAtATimeFromSeveralThreads() throws IOException {
        Path image = dataImage();
        AtomicInteger inSink = new AtomicInteger();
        Set<String> sinkThreads = ConcurrentHashMap.newKeySet();
        List<Long> offsets = new ArrayList<>();
        try (BlockDevice device = Images.open(image.toString())) {
            ParallelCopy.run(device, 64 << 10, 3, (e, r) -> r.readRange(e.start(), e.end(), 64 << 10), p -> {
                assertThat(inSink.incrementAndGet()).isOne();
                sinkThreads.add(Thread.currentThread().getName());
                if (p.data() != null) {
                    offsets.add(p.offset());
                    sleep(); // the other threads read meanwhile, and the next pieces are theirs
                }
                inSink.decrementAndGet();
            });
        }
        assertThat(offsets).hasSize(256).isSorted();
        assertThat(sinkThreads).as("the reading threads take turns").hasSizeGreaterThan(1);
    }

    @Test
    void eachPieceOfBytesIsPreparedOnceBeforeItsTurn() throws IOException {
        Path image = dataImage();
        Set<Long> prepared = ConcurrentHashMap.newKeySet();
        Set<String> preparingThreads = ConcurrentHashMap.newKeySet();
        AtomicInteger accepted = new AtomicInteger();
        try (BlockDevice device = Images.open(image.toString())) {
            ParallelCopy.run(device, 64 << 10, 2, (e, r) -> r.readRange(e.start(), e.end(), 64 << 10),
                    new ParallelCopy.Sink() {
                        @Override
                        public void prepare(ParallelCopy.Piece p) {
                            assertThat(p.data()).isNotNull();
                            assertThat(prepared.add(p.offset())).as("prepared once").isTrue();
                            preparingThreads.add(Thread.currentThread().getName());
                            sleep(); // the other thread reads and prepares meanwhile
                        }

                        @Override
                        public void accept(ParallelCopy.Piece p) {
                            if (p.data() != null) {
                                assertThat(prepared).contains(p.offset());
                                accepted.incrementAndGet();
                            }
                        }
                    });
        }
        assertThat(prepared).hasSize(256);
        assertThat(accepted).hasValue(256);
        assertThat(preparingThreads).as("prepared on both threads").hasSize(2);
    }

    /** A 16 MiB image of data, made by qemu-io. */
    private Path dataImage() {
        return Tools.qcow2(dir.resolve("data.qcow2"), "16M", "write -P 1 0 16M");
    }

    private static void sleep() {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Test
    void aFailureOfTheMapOrPlanReachesTheCallerAsItWas() throws IOException {
        AtomicInteger extents = new AtomicInteger();
        try (BlockDevice device = Corpus.get().image("v3-64k-mixed").open()) {
            assertThatThrownBy(() -> ParallelCopy.run(device, 64 << 10, 2, (e, r) -> {
                if (extents.incrementAndGet() == 3) {
                    throw new IllegalStateException("boom at " + e.start());
                }
                r.readRange(e.start(), e.end(), 64 << 10);
            }, p -> { })).isInstanceOf(IllegalStateException.class).hasMessageStartingWith("boom at ");
        }
    }

    @Test
    void aFailureOfTheSinkStopsTheReadersAndReachesTheCaller() throws IOException {
        Path image = dataImage();
        AtomicInteger taken = new AtomicInteger();
        try (BlockDevice device = Images.open(image.toString())) {
            assertThatThrownBy(() -> ParallelCopy.run(device, 4096, 3,
                    (e, r) -> r.readRange(e.start(), e.end(), 4096), p -> {
                        if (taken.incrementAndGet() == 2) {
                            throw new IOException("disk full");
                        }
                    })).isInstanceOf(IOException.class).hasMessage("disk full");
        }
        assertThat(taken).as("nothing handed over after the failure").hasValue(2);
    }

    @Test
    void aPieceLargerThanTheBuffersIsRefused() throws IOException {
        try (BlockDevice device = Corpus.get().image("v3-64k-mixed").open()) {
            assertThatThrownBy(() -> ParallelCopy.run(device, 4096, 2,
                    (e, r) -> r.readRange(e.start(), e.end(), 8192), p -> { }))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("exceeds the copy buffer");
        }
    }
}
