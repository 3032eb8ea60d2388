package org.qimg.nbd;

/** The options a client may send during option haggling ({@code NBD_OPT_*}). */
enum NbdOption {
    EXPORT_NAME(1),
    ABORT(2),
    LIST(3),
    PEEK_EXPORT(4),
    STARTTLS(5),
    INFO(6),
    GO(7),
    STRUCTURED_REPLY(8),
    LIST_META_CONTEXT(9),
    SET_META_CONTEXT(10),
    EXTENDED_HEADERS(11);

    final int code;

    NbdOption(int code) {
        this.code = code;
    }

    /** The option with this code, or null when the server does not know it. */
    static NbdOption of(int code) {
        for (NbdOption option : values()) {
            if (option.code == code) {
                return option;
            }
        }
        return null;
    }
}
