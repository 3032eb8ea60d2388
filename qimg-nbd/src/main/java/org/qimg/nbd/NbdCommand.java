package org.qimg.nbd;

/** Request types of the transmission phase ({@code NBD_CMD_*}) with the command flags each accepts. */
enum NbdCommand {
    READ(0, Nbd.CMD_FLAG_FUA | Nbd.CMD_FLAG_DF),
    WRITE(1, Nbd.CMD_FLAG_FUA),
    DISC(2, Nbd.CMD_FLAG_FUA),
    FLUSH(3, Nbd.CMD_FLAG_FUA),
    TRIM(4, Nbd.CMD_FLAG_FUA),
    CACHE(5, Nbd.CMD_FLAG_FUA),
    WRITE_ZEROES(6, Nbd.CMD_FLAG_FUA | Nbd.CMD_FLAG_NO_HOLE | Nbd.CMD_FLAG_FAST_ZERO),
    BLOCK_STATUS(7, Nbd.CMD_FLAG_FUA | Nbd.CMD_FLAG_REQ_ONE);

    final int code;
    /**
     * The flags the command may carry. "NBD_CMD_FLAG_FUA ... is valid for all commands, provided
     * NBD_FLAG_SEND_FUA has been negotiated", which this server always advertises.
     */
    final int allowedFlags;

    NbdCommand(int code, int allowedFlags) {
        this.code = code;
        this.allowedFlags = allowedFlags;
    }

    /** The command with this type, or null for an unknown one (answered with EINVAL). */
    static NbdCommand of(int code) {
        NbdCommand[] all = values();
        return code >= 0 && code < all.length ? all[code] : null;
    }
}
