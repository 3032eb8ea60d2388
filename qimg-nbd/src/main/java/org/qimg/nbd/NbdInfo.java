package org.qimg.nbd;

/** Information types of {@code NBD_REP_INFO} ({@code NBD_INFO_*}). */
enum NbdInfo {
    EXPORT(0),
    NAME(1),
    DESCRIPTION(2),
    BLOCK_SIZE(3);

    final int code;

    NbdInfo(int code) {
        this.code = code;
    }

    static NbdInfo of(int code) {
        for (NbdInfo info : values()) {
            if (info.code == code) {
                return info;
            }
        }
        return null;
    }
}
