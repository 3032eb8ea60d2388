package org.qimg.nbd;

/** Error values of replies ({@code NBD_E*}): the most common Linux errno of each. */
enum NbdError {
    EPERM(1),
    EIO(5),
    ENOMEM(12),
    EINVAL(22),
    ENOSPC(28),
    EOVERFLOW(75),
    ENOTSUP(95),
    ESHUTDOWN(108);

    final int code;

    NbdError(int code) {
        this.code = code;
    }
}
