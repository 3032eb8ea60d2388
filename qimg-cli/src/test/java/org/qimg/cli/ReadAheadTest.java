package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.Images;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/** The reader thread of the copies: order, bounded buffers, failures on either side, no thread left. */
class ReadAheadTest {
    @TempDir
    Path dir;

    @AfterEach
    void noReaderLeft() {
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().equals("qimg-read-ahead"));
    }

    @Test
    void piecesComeInMapOrderWithTheDeviceBytes() throws IOException {
        try (BlockDevice device = Corpus.get().image("chain-3").open();
             ReadAhead reads = new ReadAhead(device, 64 << 10, 2, (e, r) -> {
                 if (!e.zero()) {
                     r.readRange(e.start(), e.end(), 48 << 10);
                 }
             })) {
            long extentsEnd = 0; // where the extents handed so far end
            long readEnd = 0;    // where the reads of the current extent end
            for (ReadAhead.Piece p = reads.next(); p != null; p = reads.next()) {
                if (p.data() == null) {
                    Extent e = p.extent();
                    assertThat(e.start()).isEqualTo(extentsEnd);
                    assertThat(readEnd).isEqualTo(e.zero() ? extentsEnd : e.end());
                    extentsEnd = e.end();
                    readEnd = extentsEnd;
                    continue;
                }
                assertThat(p.offset()).isEqualTo(readEnd);
                assertThat(p.data().remaining()).isBetween(1, 48 << 10);
                ByteBuffer expected = ByteBuffer.allocate(p.data().remaining());
                device.read(p.offset(), expected);
                assertThat(p.data()).isEqualTo(expected.flip());
                readEnd += p.data().remaining();
            }
            assertThat(extentsEnd).isEqualTo(device.size());
            assertThat(reads.next()).isNull();
        }
    }

    @Test
    void aFailureOfTheReaderReachesTheCallerAsItWas() throws IOException {
        AtomicInteger extents = new AtomicInteger();
        try (BlockDevice device = Corpus.get().image("v3-64k-mixed").open();
             ReadAhead reads = new ReadAhead(device, 64 << 10, 2, (e, r) -> {
                 if (extents.incrementAndGet() == 3) {
                     throw new IOException("boom at " + e.start());
                 }
                 r.readRange(e.start(), e.end(), 64 << 10);
             })) {
            assertThatThrownBy(() -> {
                while (reads.next() != null) {
                    // take everything up to the failure
                }
            }).isInstanceOf(IOException.class).hasMessageStartingWith("boom at ");
            assertThat(reads.next()).isNull();
        }
    }

    @Test
    void closingStopsAReaderThatWaitsForBuffers() throws IOException {
        Path image = dir.resolve("data.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "16M");
        Tools.run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 16M", image.toString());
        try (BlockDevice device = Images.open(image.toString())) {
            ReadAhead reads = new ReadAhead(device, 4096, 2, (e, r) -> r.readRange(e.start(), e.end(), 4096));
            assertThat(reads.next().offset()).isZero();
            // The caller gives up (its write failed) while the reader waits for a free buffer.
            reads.close();
        }
    }
}
