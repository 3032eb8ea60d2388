package org.qimg.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The server's side of option haggling (proto.md "Fixed newstyle negotiation"): sends the greeting,
 * answers options one at a time, and ends with the {@link Session} the client entered, or null when
 * the client left (NBD_OPT_ABORT, or a closed connection between options).
 *
 * <p>Every length the client sends is checked against what is left of its message, and payloads are
 * bounded before anything is allocated: an option longer than {@link Nbd#MAX_OPTION_BYTES} is
 * skipped and refused, one longer than {@link Nbd#MAX_SKIPPED_OPTION_BYTES} ends the connection.
 */
final class Handshake {
    private final WireInput in;
    private final WritableByteChannel out;
    private final Export export;

    private boolean fixedNewstyle;
    private boolean noZeroes;
    private boolean structuredReplies;
    private boolean aborted;
    /** The contexts of the last NBD_OPT_SET_META_CONTEXT and the export name it named. */
    private List<MetaContext> contexts = List.of();
    private byte[] contextsExportName;

    Handshake(WireInput in, WritableByteChannel out, Export export) {
        this.in = in;
        this.out = out;
        this.export = export;
    }

    Session negotiate() throws IOException {
        ByteBuffer greeting = ByteBuffer.allocate(18);
        greeting.putLong(Nbd.NBDMAGIC).putLong(Nbd.IHAVEOPT)
                .putShort((short) (Nbd.FLAG_FIXED_NEWSTYLE | Nbd.FLAG_NO_ZEROES)).flip();
        Wire.writeFully(out, greeting);

        int clientFlags = in.readInt();
        if ((clientFlags & ~(Nbd.FLAG_C_FIXED_NEWSTYLE | Nbd.FLAG_C_NO_ZEROES)) != 0) {
            // "the server MUST drop the TCP connection if the client sets an unknown flag"
            throw new ProtocolViolation("unknown client flags 0x" + Integer.toHexString(clientFlags));
        }
        fixedNewstyle = (clientFlags & Nbd.FLAG_C_FIXED_NEWSTYLE) != 0;
        noZeroes = (clientFlags & Nbd.FLAG_C_NO_ZEROES) != 0;

        while (true) {
            if (in.endOfStream()) {
                return null;
            }
            long magic = in.readLong();
            if (magic != Nbd.IHAVEOPT) {
                throw new ProtocolViolation("option magic 0x" + Long.toHexString(magic) + " is not IHAVEOPT");
            }
            int code = in.readInt();
            long length = Integer.toUnsignedLong(in.readInt());
            NbdOption option = NbdOption.of(code);
            if (!fixedNewstyle && option != NbdOption.EXPORT_NAME) {
                // A client without fixed newstyle cannot read option replies: nothing to answer with.
                throw new ProtocolViolation("option " + code + " from a client without fixed newstyle");
            }
            if (length > Nbd.MAX_OPTION_BYTES) {
                if (option == NbdOption.EXPORT_NAME || length > Nbd.MAX_SKIPPED_OPTION_BYTES) {
                    throw new ProtocolViolation("option " + code + " carries " + length + " bytes");
                }
                in.skip(length);
                reply(code, NbdRep.ERR_TOO_BIG, "option data of " + length + " bytes is too long");
                continue;
            }
            ByteBuffer data = ByteBuffer.allocate((int) length);
            data.put(in.read((int) length)).flip();
            Session session = option == null ? unsupported(code) : switch (option) {
                case EXPORT_NAME -> exportName(data);
                case ABORT -> {
                    // A soft disconnect: acknowledge, then the client closes (and so do we).
                    ack(code);
                    aborted = true;
                    yield null;
                }
                case LIST -> list(code, data);
                case INFO, GO -> infoOrGo(option, data);
                case STRUCTURED_REPLY -> structuredReply(code, data);
                case LIST_META_CONTEXT, SET_META_CONTEXT -> metaContext(option, data);
                case STARTTLS -> {
                    reply(code, NbdRep.ERR_UNSUP, "TLS is not supported by this server");
                    yield null;
                }
                case PEEK_EXPORT, EXTENDED_HEADERS -> unsupported(code);
            };
            if (session != null || aborted) {
                return session;
            }
        }
    }

    private Session unsupported(int code) throws IOException {
        reply(code, NbdRep.ERR_UNSUP, "option " + code + " is not supported");
        return null;
    }

    /** NBD_OPT_EXPORT_NAME: no reply packet; an unknown name can only end the session. */
    private Session exportName(ByteBuffer data) throws IOException {
        byte[] name = new byte[data.remaining()];
        data.get(name);
        if (name.length > Nbd.MAX_STRING || !Arrays.equals(name, Wire.utf8(export.name()))) {
            throw new ProtocolViolation("NBD_OPT_EXPORT_NAME asked for an unknown export");
        }
        int flags = export.transmissionFlags(structuredReplies);
        ByteBuffer answer = ByteBuffer.allocate(10 + (noZeroes ? 0 : 124));
        answer.putLong(export.device().size()).putShort((short) flags);
        answer.position(answer.limit()).flip();
        Wire.writeFully(out, answer);
        return new Session(export, structuredReplies, contextsFor(name), flags);
    }

    private Session list(int code, ByteBuffer data) throws IOException {
        if (data.hasRemaining()) {
            reply(code, NbdRep.ERR_INVALID, "NBD_OPT_LIST takes no data");
            return null;
        }
        byte[] name = Wire.utf8(export.name());
        byte[] description = export.description() == null ? new byte[0] : Wire.utf8(export.description());
        ByteBuffer server = ByteBuffer.allocate(4 + name.length + description.length);
        server.putInt(name.length).put(name).put(description).flip();
        reply(code, NbdRep.SERVER, server);
        ack(code);
        return null;
    }

    /** NBD_OPT_INFO and NBD_OPT_GO: {@code u32 name length, name, u16 n, u16 info[n]}. */
    private Session infoOrGo(NbdOption option, ByteBuffer data) throws IOException {
        int code = option.code;
        if (data.remaining() < 6) {
            reply(code, NbdRep.ERR_INVALID, "option data of " + data.remaining() + " bytes is too short");
            return null;
        }
        long nameLength = Integer.toUnsignedLong(data.getInt());
        if (nameLength > data.remaining() - 2 || nameLength > Nbd.MAX_STRING) {
            reply(code, NbdRep.ERR_INVALID, "export name length " + nameLength + " exceeds the option data"
                    + " or " + Nbd.MAX_STRING + " bytes");
            return null;
        }
        byte[] name = new byte[(int) nameLength];
        data.get(name);
        int requests = Short.toUnsignedInt(data.getShort());
        if (data.remaining() != 2 * requests) {
            reply(code, NbdRep.ERR_INVALID, requests + " information requests do not fill the option data");
            return null;
        }
        boolean wantName = false;
        boolean wantDescription = false;
        for (int i = 0; i < requests; i++) {
            NbdInfo info = NbdInfo.of(Short.toUnsignedInt(data.getShort()));
            if (info == NbdInfo.NAME) {
                wantName = true;
            } else if (info == NbdInfo.DESCRIPTION) {
                wantDescription = true;
            }
        }
        if (!Arrays.equals(name, Wire.utf8(export.name()))) {
            reply(code, NbdRep.ERR_UNKNOWN, "export '" + new String(name, StandardCharsets.UTF_8) + "' not present");
            return null;
        }
        int flags = export.transmissionFlags(structuredReplies);
        ByteBuffer info = ByteBuffer.allocate(12);
        info.putShort((short) NbdInfo.EXPORT.code).putLong(export.device().size()).putShort((short) flags).flip();
        reply(code, NbdRep.INFO, info);
        if (wantName) {
            byte[] canonical = Wire.utf8(export.name());
            reply(code, NbdRep.INFO, ByteBuffer.allocate(2 + canonical.length)
                    .putShort((short) NbdInfo.NAME.code).put(canonical).flip());
        }
        if (wantDescription && export.description() != null) {
            byte[] text = Wire.utf8(export.description());
            reply(code, NbdRep.INFO, ByteBuffer.allocate(2 + text.length)
                    .putShort((short) NbdInfo.DESCRIPTION.code).put(text).flip());
        }
        // Sent whether asked for or not, as qemu-nbd does; these are the spec's defaults anyway.
        reply(code, NbdRep.INFO, ByteBuffer.allocate(14).putShort((short) NbdInfo.BLOCK_SIZE.code)
                .putInt(Nbd.MIN_BLOCK_SIZE).putInt(Nbd.PREFERRED_BLOCK_SIZE).putInt(Nbd.MAX_BLOCK_SIZE).flip());
        ack(code);
        if (option == NbdOption.INFO) {
            return null;
        }
        return new Session(export, structuredReplies, contextsFor(name), flags);
    }

    private Session structuredReply(int code, ByteBuffer data) throws IOException {
        if (data.hasRemaining()) {
            reply(code, NbdRep.ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
            return null;
        }
        structuredReplies = true;
        ack(code);
        return null;
    }

    /**
     * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT:
     * {@code u32 name length, name, u32 n, {u32 length, query}[n]}.
     */
    private Session metaContext(NbdOption option, ByteBuffer data) throws IOException {
        int code = option.code;
        boolean set = option == NbdOption.SET_META_CONTEXT;
        if (set) {
            // "replaces all previously-set metadata contexts (including when this command fails)"
            contexts = List.of();
            contextsExportName = null;
        }
        if (!structuredReplies) {
            reply(code, NbdRep.ERR_INVALID, "structured replies must be negotiated first");
            return null;
        }
        if (data.remaining() < 8) {
            reply(code, NbdRep.ERR_INVALID, "option data of " + data.remaining() + " bytes is too short");
            return null;
        }
        long nameLength = Integer.toUnsignedLong(data.getInt());
        if (nameLength > data.remaining() - 4 || nameLength > Nbd.MAX_STRING) {
            reply(code, NbdRep.ERR_INVALID, "export name length " + nameLength + " exceeds the option data"
                    + " or " + Nbd.MAX_STRING + " bytes");
            return null;
        }
        byte[] name = new byte[(int) nameLength];
        data.get(name);
        long count = Integer.toUnsignedLong(data.getInt());
        if (count > data.remaining() / 4) {
            reply(code, NbdRep.ERR_INVALID, count + " queries do not fit in the option data");
            return null;
        }
        List<String> queries = new ArrayList<>((int) count);
        for (long i = 0; i < count; i++) {
            if (data.remaining() < 4) {
                reply(code, NbdRep.ERR_INVALID, "query " + i + " runs past the option data");
                return null;
            }
            long queryLength = Integer.toUnsignedLong(data.getInt());
            if (queryLength > data.remaining()) {
                reply(code, NbdRep.ERR_INVALID, "query " + i + " runs past the option data");
                return null;
            }
            if (queryLength > Nbd.MAX_STRING) {
                reply(code, NbdRep.ERR_INVALID, "query " + i + " is longer than " + Nbd.MAX_STRING + " bytes");
                return null;
            }
            queries.add(Wire.string(data, (int) queryLength));
        }
        if (data.hasRemaining()) {
            reply(code, NbdRep.ERR_INVALID, data.remaining() + " bytes follow the last query");
            return null;
        }
        if (!Arrays.equals(name, Wire.utf8(export.name()))) {
            reply(code, NbdRep.ERR_UNKNOWN, "export '" + new String(name, StandardCharsets.UTF_8) + "' not present");
            return null;
        }
        List<MetaContext> selected = MetaContext.select(export.contexts(), queries, !set);
        for (MetaContext context : selected) {
            byte[] contextName = Wire.utf8(context.contextName);
            // "The metadata context ID in these replies is reserved and SHOULD be set to zero" for LIST.
            reply(code, NbdRep.META_CONTEXT, ByteBuffer.allocate(4 + contextName.length)
                    .putInt(set ? context.id() : 0).put(contextName).flip());
        }
        if (set) {
            contexts = selected.stream().sorted().toList();
            contextsExportName = name;
        }
        ack(code);
        return null;
    }

    /** The contexts that BLOCK_STATUS may use: those set for the export the client enters. */
    private List<MetaContext> contextsFor(byte[] exportName) {
        return Arrays.equals(exportName, contextsExportName) ? contexts : List.of();
    }

    private void ack(int option) throws IOException {
        reply(option, NbdRep.ACK, (ByteBuffer) null);
    }

    private void reply(int option, NbdRep type, String message) throws IOException {
        reply(option, type, message == null ? null : ByteBuffer.wrap(Wire.message(message)));
    }

    /** An option reply: {@code u64 magic, u32 option, u32 reply type, u32 length, data}. */
    private void reply(int option, NbdRep type, ByteBuffer data) throws IOException {
        int length = data == null ? 0 : data.remaining();
        ByteBuffer header = ByteBuffer.allocate(20);
        header.putLong(Nbd.OPTION_REPLY_MAGIC).putInt(option).putInt(type.code).putInt(length).flip();
        if (data == null) {
            Wire.writeFully(out, header);
        } else {
            ByteBuffer message = ByteBuffer.allocate(20 + length).put(header).put(data).flip();
            Wire.writeFully(out, message);
        }
    }
}
