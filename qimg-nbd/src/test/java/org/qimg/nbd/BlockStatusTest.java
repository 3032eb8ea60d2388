package org.qimg.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.nbd.testing.NbdTestClient;
import org.qimg.nbd.testing.QimgNbd;

/** Descriptor lists from extent streams: merging by status, the per-chunk cap, REQ_ONE. */
class BlockStatusTest {

    /**
     * A device of {@code size} bytes in 512-byte stripes: data at depth 0, then a zero stripe that
     * a backing layer (depth 1) provides; every second data stripe sits at depth 1 too.
     */
    static final class StripedDevice implements BlockDevice {
        private final long size;

        StripedDevice(long size) {
            this.size = size;
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public boolean isReadOnly() {
            return true;
        }

        @Override
        public void read(long guestOffset, ByteBuffer dst) {
            while (dst.hasRemaining()) {
                dst.put((byte) 0);
            }
        }

        @Override
        public OptionalLong seekData(long guestOffset) {
            throw new UnsupportedOperationException();
        }

        @Override
        public OptionalLong seekHole(long guestOffset) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Extent extentAt(long guestOffset, long maxLength) {
            long stripe = guestOffset / 512;
            long length = Math.min(maxLength, (stripe + 1) * 512 - guestOffset);
            boolean data = stripe % 2 == 0;
            int depth = data ? (int) (stripe / 2 % 2) : 1;
            return new Extent(guestOffset, length, data, !data, true, depth, null, -1, false, false);
        }

        @Override
        public ExtentStream map(long guestOffset, long length) {
            long end = Math.min(size, guestOffset + length);
            long[] at = {guestOffset};
            return () -> {
                if (at[0] >= end) {
                    return null;
                }
                Extent e = extentAt(at[0], end - at[0]);
                at[0] = e.end();
                return e;
            };
        }

        @Override
        public void close() {
        }
    }

    private static final List<MetaContext> BOTH = List.of(MetaContext.BASE_ALLOCATION, MetaContext.QEMU_ALLOCATION_DEPTH);

    @Test
    void mergesByStatusPerContext() throws IOException {
        BlockStatus status = BlockStatus.of(new StripedDevice(1 << 20), BOTH, 0, 4096, false);
        // base:allocation alternates data (0) and hole,zero (3) every stripe
        assertThat(status.descriptors(0)).isEqualTo(8);
        assertThat(status.status(0, 0)).isZero();
        assertThat(status.status(0, 1)).isEqualTo(3);
        // depth: 1, 2, 2, 2, 1, 2, 2, 2 -> runs 1 | 2 2 2 | 1 | 2 2 2
        assertThat(status.descriptors(1)).isEqualTo(4);
        assertThat(status.length(1, 0)).isEqualTo(512);
        assertThat(status.length(1, 1)).isEqualTo(1536);
        assertThat(status.status(1, 1)).isEqualTo(2);
    }

    @Test
    void capStopsEveryListAtTheSameOffset() throws IOException {
        BlockStatus status = BlockStatus.of(new StripedDevice(1 << 20), BOTH, 100, (1 << 20) - 101, false, 10);
        assertThat(status.descriptors(0)).isEqualTo(10);
        long base = 0;
        long depth = 0;
        for (int d = 0; d < status.descriptors(0); d++) {
            base += status.length(0, d);
        }
        for (int d = 0; d < status.descriptors(1); d++) {
            depth += status.length(1, d);
        }
        assertThat(base).isEqualTo(depth).isEqualTo(412 + 9 * 512);
    }

    @Test
    void reqOneGivesOneDescriptorPerContext() throws IOException {
        BlockStatus status = BlockStatus.of(new StripedDevice(1 << 20), BOTH, 512, 8192, true);
        assertThat(status.descriptors(0)).isEqualTo(1);
        assertThat(status.descriptors(1)).isEqualTo(1);
        assertThat(status.length(0, 0)).isEqualTo(512);
    }

    @Test
    void aChunkCarriesAtMostTwoToTheTwentyExtents(@TempDir Path tmp) throws IOException {
        try (QimgNbd server = QimgNbd.start(new Export("", null, new StripedDevice(8L << 30), true, false, false),
                tmp.resolve("s"), NbdServer.Settings.defaults());
             NbdTestClient c = NbdTestClient.connect(server.socket())) {
            c.go("", true, "base:allocation");
            List<NbdTestClient.Descriptors> reply = c.blockStatus(0, 0xFFFF_FFFFL, 0);
            assertThat(reply).hasSize(1);
            assertThat(reply.getFirst().lengths()).hasSize(1 << 20);
            assertThat(reply.getFirst().total()).isEqualTo(512L << 20);
        }
    }
}
