package org.qimg.nbd;

/** Structured reply chunk types ({@code NBD_REPLY_TYPE_*}); error chunks have bit 15 set. */
enum NbdReplyType {
    NONE(0),
    OFFSET_DATA(1),
    OFFSET_HOLE(2),
    BLOCK_STATUS(5),
    ERROR(0x8001),
    ERROR_OFFSET(0x8002);

    final int code;

    NbdReplyType(int code) {
        this.code = code;
    }
}
