package org.qimg.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.qimg.nbd.testing.NbdTestClient.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.nbd.testing.NbdTestClient;
import org.qimg.nbd.testing.QimgNbd;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;

/**
 * Clients that break the protocol, each on its own connection, while a well-behaved client keeps
 * reading (and checking) the image on another: the bad one gets the protocol's answer or loses its
 * connection, and nothing else changes.
 */
class BadClientTest {
    private static final String IMAGE = "chain-3";
    private static byte[] reference;
    private static QimgNbd server;
    private static long size;

    private Thread goodReader;
    private final AtomicBoolean stopGood = new AtomicBoolean();
    private final AtomicReference<Throwable> goodFailure = new AtomicReference<>();
    private final AtomicLong goodReads = new AtomicLong();

    @BeforeAll
    static void start(@TempDir Path tmp) throws IOException {
        CorpusImage image = Corpus.get().image(IMAGE);
        reference = Corpus.qemuRawContent(image, tmp);
        size = reference.length;
        server = QimgNbd.start(
                new Export("", null, image.open(), true, true, true), tmp.resolve("s"),
                NbdServer.Settings.defaults().withPersistent(true).withMaxClients(0)
                        .withHandshakeLimit(Duration.ofMillis(500)));
    }

    @AfterAll
    static void stop() throws IOException {
        server.close();
    }

    /** A good client reading random ranges in a loop and checking every byte. */
    @BeforeEach
    void startGoodClient() throws Exception {
        NbdTestClient good = NbdTestClient.connect(server.socket());
        good.go("", true, "base:allocation");
        goodReader = Thread.ofVirtual().start(() -> {
            Random random = new Random(42);
            try (good) {
                while (!stopGood.get()) {
                    int length = 1 + random.nextInt(1 << 20);
                    long offset = (long) (random.nextDouble() * (size - length));
                    byte[] data = good.read(offset, length);
                    if (!Arrays.equals(data, 0, length, reference, (int) offset, (int) offset + length)) {
                        throw new AssertionError("good client read wrong bytes at " + offset);
                    }
                    goodReads.incrementAndGet();
                }
                good.disconnect();
            } catch (Throwable t) {
                goodFailure.set(t);
            }
        });
        waitForGoodReads(1);
    }

    @AfterEach
    void goodClientWasUnaffected() throws Exception {
        waitForGoodReads(goodReads.get() + 3);
        stopGood.set(true);
        goodReader.join(Duration.ofSeconds(10));
        assertThat(goodFailure.get()).as("the good client's failure").isNull();
        // and a newcomer is served too
        try (NbdTestClient fresh = NbdTestClient.connect(server.socket())) {
            fresh.go("", true);
            assertThat(fresh.read(0, 65536)).isEqualTo(Arrays.copyOf(reference, 65536));
        }
    }

    private void waitForGoodReads(long target) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (goodReads.get() < target && goodFailure.get() == null && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertThat(goodFailure.get()).as("the good client's failure").isNull();
        assertThat(goodReads.get()).as("good reads").isGreaterThanOrEqualTo(target);
    }

    private static NbdTestClient bad() throws IOException {
        return NbdTestClient.connect(server.socket(), Duration.ofSeconds(5));
    }

    @Test
    void garbageAfterTheHandshake() throws IOException {
        try (NbdTestClient c = bad()) {
            c.go("", true);
            byte[] garbage = new byte[100];
            new Random(1).nextBytes(garbage);
            c.send(garbage);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void unknownClientFlags() throws IOException {
        try (NbdTestClient c = bad()) {
            c.greet(0xFFFF_0001);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void wrongOptionMagic() throws IOException {
        try (NbdTestClient c = bad()) {
            c.greet(1);
            c.send(ByteBuffer.allocate(16).putLong(0x1122334455667788L).putInt(OPT_GO).putInt(0).flip());
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void commandBeforeNegotiationEnds() throws IOException {
        try (NbdTestClient c = bad()) {
            c.greet(3);
            c.request(0, CMD_READ, 0, 4096, null);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void unknownExportWithExportName() throws IOException {
        try (NbdTestClient c = bad()) {
            c.greet(1);
            c.sendOption(OPT_EXPORT_NAME, utf8("nope"));
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void optionsFromAClientWithoutFixedNewstyle() throws IOException {
        try (NbdTestClient c = bad()) {
            c.greet(0);
            c.sendOption(OPT_LIST, new byte[0]);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void readPastTheEnd() throws IOException {
        try (NbdTestClient c = bad()) {
            c.go("", true);
            assertThat(c.errorOf(c.request(0, CMD_READ, size - 4096, 8192, null), 0)).isEqualTo(EINVAL);
            assertThat(c.errorOf(c.request(0, CMD_READ, size, 1, null), 0)).isEqualTo(EINVAL);
            assertThat(c.errorOf(c.request(0, CMD_READ, 1L << 62, 512, null), 0)).isEqualTo(EINVAL);
            assertThat(c.read(size - 4096, 4096)).isEqualTo(Arrays.copyOfRange(reference, (int) size - 4096, (int) size));
        }
    }

    @Test
    void hugeLengthsAreRefusedWithoutAllocating() throws IOException {
        try (NbdTestClient c = bad()) {
            c.go("", true, "base:allocation");
            assertThat(c.errorOf(c.request(0, CMD_READ, 0, 0xFFFF_FFFFL, null), 0)).isEqualTo(EINVAL);
            assertThat(c.errorOf(c.request(0, CMD_BLOCK_STATUS, 0, 0xFFFF_FFFFL, null), 0)).isEqualTo(EINVAL);
            assertThat(c.errorOf(c.request(0, CMD_CACHE, 0, 0xFFFF_FFFFL, null), 0)).isEqualTo(EINVAL);
            assertThat(c.read(0, 512)).isEqualTo(Arrays.copyOf(reference, 512));
            // A write announcing 4 GiB of payload: the server cannot stay in step without reading it
            // all, and will not buffer it; it drops the connection.
            c.request(0, CMD_WRITE, 0, 0xFFFF_FFFFL, new byte[1000]);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void hugeOptions() throws IOException {
        try (NbdTestClient c = bad()) {
            c.greet(1);
            // 100 KiB: more than the server reads into memory; skipped and refused
            byte[] big = new byte[100 << 10];
            c.sendOption(OPT_GO, big);
            OptionReply reply = c.readOptionReply();
            assertThat(reply.type()).isEqualTo(REP_ERR_TOO_BIG);
            assertThat(c.option(OPT_LIST, new byte[0]).getLast().type()).isEqualTo(REP_ACK);
            // 4 GiB announced: the connection is dropped
            c.send(ByteBuffer.allocate(16).putLong(IHAVEOPT).putInt(OPT_GO).putInt(-16).flip());
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void clientVanishesMidRequest() throws IOException {
        try (NbdTestClient c = bad()) {
            c.go("", true);
            c.send(ByteBuffer.allocate(13).putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) 0)
                    .putInt(7).put((byte) 1).flip());
        }
        try (NbdTestClient c = bad()) {
            c.go("", true);
            c.request(0, CMD_WRITE, 0, 1 << 20, new byte[1000]);
        }
        try (NbdTestClient c = bad()) {
            c.go("", true);
            for (int i = 0; i < 20; i++) {
                c.request(0, CMD_READ, 0, 8 << 20, null); // and never reads the replies
            }
        }
        try (NbdTestClient c = bad()) {
            c.greet(1);
            c.send(ByteBuffer.allocate(20).putLong(IHAVEOPT).putInt(OPT_GO).putInt(100).putInt(4).flip());
        }
    }

    @Test
    void clientThatNeverReadsItsReplies() throws Exception {
        try (NbdTestClient c = bad()) {
            c.go("", true);
            for (int i = 0; i < 100; i++) {
                c.request(0, CMD_READ, 0, 4 << 20, null);
            }
            // Its replies fill the socket buffers; the server's other clients carry on.
            long before = goodReads.get();
            waitForGoodReads(before + 5);
        }
    }

    @Test
    void clientThatNeverFinishesTheHandshake() throws IOException {
        try (NbdTestClient c = NbdTestClient.connect(server.socket(), Duration.ofSeconds(5))) {
            c.greet(1);
            long start = System.nanoTime();
            assertThat(c.closedByServer()).isTrue();
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(3));
        }
    }
}
