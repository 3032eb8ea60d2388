package org.qimg.nbd;

/**
 * Magic numbers, flag bits and limits of the NBD protocol, named as {@code doc/proto.md} names them
 * (without the {@code NBD_} prefix). All integers travel in network byte order.
 */
final class Nbd {
    private Nbd() {
    }

    // Handshake ("Fixed newstyle negotiation").
    static final long NBDMAGIC = 0x4e42444d41474943L;
    static final long IHAVEOPT = 0x49484156454F5054L;
    /** Magic of every option reply. */
    static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;

    /** Handshake flags, sent by the server. */
    static final int FLAG_FIXED_NEWSTYLE = 1;
    static final int FLAG_NO_ZEROES = 1 << 1;
    /** Client flags. */
    static final int FLAG_C_FIXED_NEWSTYLE = 1;
    static final int FLAG_C_NO_ZEROES = 1 << 1;

    // Transmission flags (16 bits, sent with NBD_INFO_EXPORT or after NBD_OPT_EXPORT_NAME).
    static final int FLAG_HAS_FLAGS = 1;
    static final int FLAG_READ_ONLY = 1 << 1;
    static final int FLAG_SEND_FLUSH = 1 << 2;
    static final int FLAG_SEND_FUA = 1 << 3;
    static final int FLAG_ROTATIONAL = 1 << 4;
    static final int FLAG_SEND_TRIM = 1 << 5;
    static final int FLAG_SEND_WRITE_ZEROES = 1 << 6;
    static final int FLAG_SEND_DF = 1 << 7;
    static final int FLAG_CAN_MULTI_CONN = 1 << 8;
    static final int FLAG_SEND_CACHE = 1 << 10;
    static final int FLAG_SEND_FAST_ZERO = 1 << 11;

    // Transmission messages.
    static final int REQUEST_MAGIC = 0x25609513;
    static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    /** magic, flags, type, cookie, offset, length. */
    static final int REQUEST_HEADER_BYTES = 28;
    /** magic, error, cookie. */
    static final int SIMPLE_REPLY_HEADER_BYTES = 16;
    /** magic, flags, type, cookie, length. */
    static final int CHUNK_HEADER_BYTES = 20;

    /** Command flags. */
    static final int CMD_FLAG_FUA = 1;
    static final int CMD_FLAG_NO_HOLE = 1 << 1;
    static final int CMD_FLAG_DF = 1 << 2;
    static final int CMD_FLAG_REQ_ONE = 1 << 3;
    static final int CMD_FLAG_FAST_ZERO = 1 << 4;

    /** Structured reply flags. */
    static final int REPLY_FLAG_DONE = 1;

    /** base:allocation status bits. */
    static final int STATE_HOLE = 1;
    static final int STATE_ZERO = 1 << 1;

    // Limits ("Block size constraints"; strings).
    /** Longest string (export name, query, message) the spec allows. */
    static final int MAX_STRING = 4096;
    /** The block sizes advertised with NBD_INFO_BLOCK_SIZE: qemu-nbd's. */
    static final int MIN_BLOCK_SIZE = 1;
    static final int PREFERRED_BLOCK_SIZE = 4096;
    static final int MAX_BLOCK_SIZE = 32 << 20;
    /** Longest option payload read into memory; longer ones are skipped or end the connection. */
    static final int MAX_OPTION_BYTES = 64 << 10;
    /** An option payload longer than this is a denial of service: the connection is dropped. */
    static final long MAX_SKIPPED_OPTION_BYTES = 16L << 20;
    /** "The server SHOULD NOT send more than 2^20 extents in a single NBD_REPLY_TYPE_BLOCK_STATUS chunk." */
    static final int MAX_EXTENTS_PER_CHUNK = 1 << 20;
}
