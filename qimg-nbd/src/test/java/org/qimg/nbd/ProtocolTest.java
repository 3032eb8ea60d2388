package org.qimg.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.qimg.nbd.testing.NbdTestClient.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.nbd.testing.NbdTestClient;
import org.qimg.nbd.testing.NbdTestClient.Chunk;
import org.qimg.nbd.testing.NbdTestClient.Descriptors;
import org.qimg.nbd.testing.NbdTestClient.ExportInfo;
import org.qimg.nbd.testing.NbdTestClient.OptionReply;
import org.qimg.nbd.testing.QimgNbd;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;

/**
 * The server's answers, option by option and command by command, as proto.md prescribes them, to a
 * client that follows the protocol (and one that asks for what it should not).
 */
class ProtocolTest {
    /** 8 MiB: data, zero clusters, unallocated ranges. */
    private static final String IMAGE = "v3-64k-mixed";
    private static byte[] reference;

    @TempDir
    Path tmp;
    private QimgNbd server;
    private final List<NbdTestClient> clients = new ArrayList<>();

    @BeforeAll
    static void content(@TempDir Path scratch) throws IOException {
        reference = Corpus.qemuRawContent(Corpus.get().image(IMAGE), scratch);
    }

    @BeforeEach
    void start() throws IOException {
        CorpusImage image = Corpus.get().image(IMAGE);
        server = QimgNbd.start(image, tmp.resolve("s"), true, "disk");
    }

    @AfterEach
    void stop() throws IOException {
        for (NbdTestClient c : clients) {
            c.close();
        }
        server.close();
    }

    private NbdTestClient client() throws IOException {
        NbdTestClient c = NbdTestClient.connect(server.socket());
        clients.add(c);
        return c;
    }

    // ---- option haggling ------------------------------------------------------------------------

    @Test
    void greetingOffersFixedNewstyleAndNoZeroes() throws IOException {
        assertThat(client().greet(1)).isEqualTo(3);
    }

    @Test
    void listNamesTheExport() throws IOException {
        NbdTestClient c = client();
        c.greet(1);
        List<OptionReply> replies = c.option(OPT_LIST, new byte[0]);
        assertThat(replies).extracting(OptionReply::type).containsExactly(REP_SERVER, REP_ACK);
        ByteBuffer server = ByteBuffer.wrap(replies.getFirst().data());
        assertThat(server.getInt()).isEqualTo(4);
        assertThat(StandardCharsets.UTF_8.decode(server).toString()).isEqualTo("disk");
        assertThat(c.option(OPT_LIST, new byte[] {1}).getLast().type()).isEqualTo(REP_ERR_INVALID);
    }

    @Test
    void infoAnswersWithoutEnteringTransmission() throws IOException {
        NbdTestClient c = client();
        c.greet(1);
        assertThat(c.option(OPT_INFO, infoRequest("nope")).getLast().type()).isEqualTo(REP_ERR_UNKNOWN);
        List<OptionReply> replies = c.option(OPT_INFO, infoRequest("disk", 1, 2, 3));
        Map<Integer, ByteBuffer> infos = new HashMap<>();
        for (OptionReply r : replies.subList(0, replies.size() - 1)) {
            assertThat(r.type()).isEqualTo(REP_INFO);
            ByteBuffer b = ByteBuffer.wrap(r.data());
            infos.put((int) b.getShort(), b);
        }
        assertThat(replies.getLast().type()).isEqualTo(REP_ACK);
        ByteBuffer export = infos.get(0);
        assertThat(export.remaining()).isEqualTo(10);
        assertThat(export.getLong()).isEqualTo(8 << 20);
        int flags = export.getShort();
        assertThat(flags & 0x3).as("HAS_FLAGS | READ_ONLY").isEqualTo(3);
        assertThat(flags & (0x20 | 0x40)).as("no TRIM or WRITE_ZEROES on a read-only export").isZero();
        assertThat(StandardCharsets.UTF_8.decode(infos.get(1)).toString()).isEqualTo("disk");
        assertThat(infos).as("no description to send").doesNotContainKey(2);
        ByteBuffer sizes = infos.get(3);
        assertThat(new int[] {sizes.getInt(), sizes.getInt(), sizes.getInt()}).containsExactly(1, 4096, 32 << 20);
        // Still negotiating: GO works afterwards.
        assertThat(c.option(OPT_GO, infoRequest("disk")).getLast().type()).isEqualTo(REP_ACK);
        assertThat(c.read(0, 4096)).isEqualTo(java.util.Arrays.copyOf(reference, 4096));
    }

    @Test
    void malformedOptionsAreRefusedAndNegotiationGoesOn() throws IOException {
        NbdTestClient c = client();
        c.greet(1);
        // name length beyond the data; info count not matching the data
        assertThat(c.option(OPT_GO, ByteBuffer.allocate(6).putInt(100).putShort((short) 0).array()).getLast().type())
                .isEqualTo(REP_ERR_INVALID);
        assertThat(c.option(OPT_GO, ByteBuffer.allocate(8).putInt(0).putShort((short) 5).putShort((short) 0).array())
                .getLast().type()).isEqualTo(REP_ERR_INVALID);
        assertThat(c.option(OPT_STARTTLS, new byte[0]).getLast().type()).isEqualTo(REP_ERR_UNSUP);
        assertThat(c.option(99, new byte[] {1, 2, 3}).getLast().type()).isEqualTo(REP_ERR_UNSUP);
        assertThat(c.option(OPT_STRUCTURED_REPLY, new byte[] {0}).getLast().type()).isEqualTo(REP_ERR_INVALID);
        // meta contexts need structured replies first
        assertThat(c.option(OPT_SET_META_CONTEXT, metaContextRequest("disk", "base:allocation")).getLast().type())
                .isEqualTo(REP_ERR_INVALID);
        assertThat(c.option(OPT_STRUCTURED_REPLY, new byte[0]).getLast().type()).isEqualTo(REP_ACK);
        byte[] truncated = metaContextRequest("disk", "base:allocation");
        assertThat(c.option(OPT_SET_META_CONTEXT, java.util.Arrays.copyOf(truncated, truncated.length - 3))
                .getLast().type()).isEqualTo(REP_ERR_INVALID);
        byte[] lying = ByteBuffer.allocate(12).putInt(0).putInt(1_000_000).putInt(0).array();
        assertThat(c.option(OPT_LIST_META_CONTEXT, lying).getLast().type()).isEqualTo(REP_ERR_INVALID);
        assertThat(c.option(OPT_GO, infoRequest("disk")).getLast().type()).isEqualTo(REP_ACK);
    }

    @Test
    void metaContextQueries() throws IOException {
        NbdTestClient c = client();
        c.greet(1);
        c.option(OPT_STRUCTURED_REPLY, new byte[0]);
        assertThat(contexts(c.option(OPT_LIST_META_CONTEXT, metaContextRequest("disk"))))
                .containsExactly("0 base:allocation", "0 qemu:allocation-depth");
        assertThat(contexts(c.option(OPT_LIST_META_CONTEXT, metaContextRequest("disk", "qemu:"))))
                .containsExactly("0 qemu:allocation-depth");
        assertThat(contexts(c.option(OPT_LIST_META_CONTEXT, metaContextRequest("disk", "base:", "x-foo:bar", "nocolon"))))
                .containsExactly("0 base:allocation");
        assertThat(c.option(OPT_LIST_META_CONTEXT, metaContextRequest("other")).getLast().type())
                .isEqualTo(REP_ERR_UNKNOWN);
        // SET: the empty leaf selects nothing; full names select, each once, with non-zero ids.
        assertThat(contexts(c.option(OPT_SET_META_CONTEXT, metaContextRequest("disk", "base:", "qemu:")))).isEmpty();
        List<String> set = contexts(c.option(OPT_SET_META_CONTEXT,
                metaContextRequest("disk", "qemu:allocation-depth", "base:allocation", "base:allocation")));
        assertThat(set).hasSize(2).noneMatch(s -> s.startsWith("0 "));
        assertThat(set).anyMatch(s -> s.endsWith(" base:allocation")).anyMatch(s -> s.endsWith(" qemu:allocation-depth"));
    }

    private static List<String> contexts(List<OptionReply> replies) {
        assertThat(replies.getLast().type()).isEqualTo(REP_ACK);
        List<String> out = new ArrayList<>();
        for (OptionReply r : replies.subList(0, replies.size() - 1)) {
            assertThat(r.type()).isEqualTo(REP_META_CONTEXT);
            ByteBuffer b = ByteBuffer.wrap(r.data());
            int id = b.getInt();
            out.add(id + " " + StandardCharsets.UTF_8.decode(b));
        }
        return out;
    }

    @Test
    void exportNameEntersTransmissionWithOrWithoutZeroes() throws IOException {
        for (int clientFlags : new int[] {1, 3}) {
            NbdTestClient c = client();
            c.greet(clientFlags);
            c.sendOption(OPT_EXPORT_NAME, utf8("disk"));
            ByteBuffer answer = c.receive(clientFlags == 3 ? 10 : 134);
            assertThat(answer.getLong()).isEqualTo(8 << 20);
            assertThat(answer.getShort() & 3).isEqualTo(3);
            while (answer.hasRemaining()) {
                assertThat(answer.get()).isZero();
            }
            assertThat(c.read(1 << 20, 65536)).isEqualTo(java.util.Arrays.copyOfRange(reference, 1 << 20, (1 << 20) + 65536));
        }
    }

    @Test
    void abortIsAcknowledged() throws IOException {
        NbdTestClient c = client();
        c.greet(1);
        assertThat(c.option(OPT_ABORT, new byte[0]).getLast().type()).isEqualTo(REP_ACK);
        assertThat(c.closedByServer()).isTrue();
    }

    // ---- transmission ---------------------------------------------------------------------------

    @Test
    void simpleRepliesWithoutStructuredReplies() throws IOException {
        NbdTestClient c = client();
        ExportInfo info = c.go("disk", false);
        assertThat(info.flags() & 0x80).as("no DF without structured replies").isZero();
        assertThat(c.read(0, 3 << 20)).isEqualTo(java.util.Arrays.copyOf(reference, 3 << 20));
        long cookie = c.request(FLAG_DF, CMD_READ, 0, 512, null);
        assertThat(c.errorOf(cookie, 512)).isEqualTo(EINVAL);
        cookie = c.request(0, CMD_BLOCK_STATUS, 0, 512, null);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EINVAL);
        cookie = c.request(0, CMD_READ, (8 << 20) - 512, 1024, null);
        assertThat(c.errorOf(cookie, 1024)).isEqualTo(EINVAL);
        assertThat(c.read(100, 1000)).isEqualTo(java.util.Arrays.copyOfRange(reference, 100, 1100));
    }

    @Test
    void structuredReadsSendHolesAsHoles() throws IOException {
        NbdTestClient c = client();
        c.go("disk", true, "base:allocation");
        BlockDevice device = server.server().export().device();
        long cookie = c.request(0, CMD_READ, 0, 8 << 20, null);
        List<Chunk> chunks = c.readReply(0);
        long holeBytes = 0;
        long dataBytes = 0;
        for (Chunk chunk : chunks) {
            assertThat(chunk.cookie()).isEqualTo(cookie);
            ByteBuffer p = chunk.buffer();
            if (chunk.type() == TYPE_OFFSET_HOLE) {
                long offset = p.getLong();
                int length = p.getInt();
                holeBytes += length;
                Extent e = device.extentAt(offset, length);
                assertThat(e.zero()).as("a hole chunk at " + offset).isTrue();
            } else if (chunk.type() == TYPE_OFFSET_DATA) {
                long offset = p.getLong();
                dataBytes += p.remaining();
                byte[] data = new byte[p.remaining()];
                p.get(data);
                assertThat(data).isEqualTo(java.util.Arrays.copyOfRange(reference, (int) offset, (int) offset + data.length));
            }
        }
        assertThat(holeBytes).isPositive();
        assertThat(holeBytes + dataBytes).isEqualTo(8 << 20);
        assertThat(chunks.getLast().done()).isTrue();
        assertThat(c.read(0, 8 << 20)).isEqualTo(reference);
        assertThat(c.read(12345, 2_000_000)).isEqualTo(java.util.Arrays.copyOfRange(reference, 12345, 2_012_345));
    }

    @Test
    void dontFragmentSendsOneContentChunk() throws IOException {
        NbdTestClient c = client();
        ExportInfo info = c.go("disk", true);
        assertThat(info.flags() & 0x80).as("SEND_DF").isNotZero();
        for (long[] range : new long[][] {{0, 1 << 20}, {1 << 20, 128 << 10}, {6 << 20, 1 << 20}}) {
            long cookie = c.request(FLAG_DF, CMD_READ, range[0], range[1], null);
            List<Chunk> chunks = c.readReply(0);
            assertThat(chunks.stream().filter(ch -> ch.type() == TYPE_OFFSET_DATA || ch.type() == TYPE_OFFSET_HOLE))
                    .hasSize(1);
            assertThat(chunks).allMatch(ch -> ch.cookie() == cookie);
            c.read(range[0], (int) range[1], FLAG_DF);
        }
        assertThat(c.read(0, 1 << 20, FLAG_DF)).isEqualTo(java.util.Arrays.copyOf(reference, 1 << 20));
    }

    @Test
    void blockStatusFollowsTheEngineMap() throws IOException {
        NbdTestClient c = client();
        c.go("disk", true, "base:allocation", "qemu:allocation-depth");
        BlockDevice device = server.server().export().device();
        List<Descriptors> all = c.blockStatus(0, 8 << 20, 0);
        assertThat(all).hasSize(2);
        for (Descriptors d : all) {
            assertThat(d.total()).isEqualTo(8 << 20);
            long at = 0;
            for (int i = 0; i < d.lengths().length; i++) {
                Extent e = device.extentAt(at, d.lengths()[i]);
                int expected = d.contextId() == MetaContext.BASE_ALLOCATION.id()
                        ? MetaContext.BASE_ALLOCATION.status(e) : MetaContext.QEMU_ALLOCATION_DEPTH.status(e);
                assertThat(d.statuses()[i]).as("status at " + at).isEqualTo(expected);
                if (i > 0) {
                    assertThat(d.statuses()[i]).as("merged by status").isNotEqualTo(d.statuses()[i - 1]);
                }
                at += d.lengths()[i];
            }
        }
        // REQ_ONE: one descriptor per context, no longer than asked.
        List<Descriptors> one = c.blockStatus(4096, 100_000, FLAG_REQ_ONE);
        assertThat(one).hasSize(2).allSatisfy(d -> {
            assertThat(d.lengths()).hasSize(1);
            assertThat(d.lengths()[0]).isBetween(1L, 100_000L);
        });
        // Unaligned, at the end, past the end.
        assertThat(c.blockStatus((8 << 20) - 1, 1, 0)).allSatisfy(d -> assertThat(d.total()).isEqualTo(1));
        long cookie = c.request(0, CMD_BLOCK_STATUS, (8 << 20) - 512, 1024, null);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EINVAL);
        cookie = c.request(0, CMD_BLOCK_STATUS, 0, 0, null);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EINVAL);
    }

    @Test
    void blockStatusNeedsASelectedContext() throws IOException {
        NbdTestClient c = client();
        c.greet(3);
        c.option(OPT_STRUCTURED_REPLY, new byte[0]);
        // contexts set for another export name do not count
        c.option(OPT_SET_META_CONTEXT, metaContextRequest("other", "base:allocation"));
        c.option(OPT_GO, infoRequest("disk"));
        long cookie = c.request(0, CMD_BLOCK_STATUS, 0, 4096, null);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EINVAL);
    }

    @Test
    void readOnlyExportRefusesWritesAndStaysInStep() throws IOException {
        NbdTestClient c = client();
        c.go("disk", true);
        long cookie = c.request(0, CMD_WRITE, 0, 4096, new byte[4096]);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EPERM);
        cookie = c.request(FLAG_FUA, CMD_WRITE, 8 << 20, 512, new byte[512]);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EPERM);
        cookie = c.request(0, CMD_TRIM, 0, 4096, null);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EPERM);
        cookie = c.request(FLAG_NO_HOLE, CMD_WRITE_ZEROES, 0, 4096, null);
        assertThat(c.errorOf(cookie, 0)).isEqualTo(EPERM);
        c.expectOk(c.request(0, CMD_FLUSH, 0, 0, null));
        c.expectOk(c.request(FLAG_FUA, CMD_CACHE, 0, 1 << 20, null));
        assertThat(c.errorOf(c.request(0, CMD_CACHE, 8 << 20, 1, null), 0)).isEqualTo(EINVAL);
        assertThat(c.read(0, 4096)).isEqualTo(java.util.Arrays.copyOf(reference, 4096));
    }

    @Test
    void unknownCommandsAndFlagsGetEinval() throws IOException {
        NbdTestClient c = client();
        c.go("disk", true, "base:allocation");
        assertThat(c.errorOf(c.request(0, 42, 0, 512, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(0x80, CMD_READ, 0, 512, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(FLAG_REQ_ONE, CMD_READ, 0, 512, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(FLAG_DF, CMD_BLOCK_STATUS, 0, 512, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(0, CMD_READ, Long.MIN_VALUE, 512, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(0, CMD_READ, -512, 512, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(0, CMD_READ, 0, (32 << 20) + 1, null), 0)).isEqualTo(EINVAL);
        assertThat(c.errorOf(c.request(0, CMD_READ, 0, 0xFFFF_FFFFL, null), 0)).isEqualTo(EINVAL);
        c.expectOk(c.request(0, CMD_READ, 8 << 20, 0, null));
        assertThat(c.read(4096, 4096)).isEqualTo(java.util.Arrays.copyOfRange(reference, 4096, 8192));
    }

    @Test
    void pipelinedRequestsAreAllAnswered() throws IOException {
        NbdTestClient c = client();
        c.go("disk", true, "base:allocation");
        Map<Long, long[]> pending = new HashMap<>();
        for (int i = 0; i < 200; i++) {
            long offset = (i * 40_961L) % ((8 << 20) - 65536);
            int length = 1 + (i * 7919) % 65536;
            pending.put(c.request(0, CMD_READ, offset, length, null), new long[] {offset, length});
        }
        Map<Long, byte[]> assembled = new HashMap<>();
        while (!pending.isEmpty()) {
            Chunk chunk = c.readChunk(0);
            long[] range = pending.get(chunk.cookie());
            assertThat(range).as("reply to an unknown cookie").isNotNull();
            byte[] buf = assembled.computeIfAbsent(chunk.cookie(), k -> new byte[(int) range[1]]);
            ByteBuffer p = chunk.buffer();
            if (chunk.type() == TYPE_OFFSET_DATA) {
                int at = (int) (p.getLong() - range[0]);
                p.get(buf, at, p.remaining());
            }
            if (chunk.done()) {
                assertThat(buf).isEqualTo(java.util.Arrays.copyOfRange(reference, (int) range[0],
                        (int) (range[0] + range[1])));
                pending.remove(chunk.cookie());
            }
        }
    }

    @Test
    void disconnectClosesAfterRepliesInFlight() throws IOException {
        NbdTestClient c = client();
        c.go("disk", true);
        long cookie = c.request(0, CMD_READ, 0, 1 << 20, null);
        c.disconnect();
        List<Chunk> reply = c.readReply(0);
        assertThat(reply).allMatch(ch -> ch.cookie() == cookie);
        assertThat(c.closedByServer()).isTrue();
    }

    @Test
    void engineFailuresBecomeEio() throws IOException {
        server.close();
        var device = new org.qimg.nbd.testing.MemoryDevice(1 << 20).failReads(65536, 131072);
        server = QimgNbd.start(Export.of(device), tmp.resolve("m"), NbdServer.Settings.defaults());
        NbdTestClient c = client();
        c.go("", true);
        assertThatThrownBy(() -> c.read(0, 1 << 20)).isInstanceOfSatisfying(NbdTestClient.NbdErrorReply.class,
                e -> assertThat(e.error).isEqualTo(EIO)).hasMessageContaining("injected read failure");
        assertThat(c.read(0, 65536)).hasSize(65536);
    }
}
