package org.qimg.nbd;

/** Option reply types ({@code NBD_REP_*}); the errors have bit 31 set. */
enum NbdRep {
    ACK(1),
    SERVER(2),
    INFO(3),
    META_CONTEXT(4),
    ERR_UNSUP(0x8000_0001),
    ERR_POLICY(0x8000_0002),
    ERR_INVALID(0x8000_0003),
    ERR_PLATFORM(0x8000_0004),
    ERR_TLS_REQD(0x8000_0005),
    ERR_UNKNOWN(0x8000_0006),
    ERR_SHUTDOWN(0x8000_0007),
    ERR_BLOCK_SIZE_REQD(0x8000_0008),
    ERR_TOO_BIG(0x8000_0009);

    final int code;

    NbdRep(int code) {
        this.code = code;
    }
}
