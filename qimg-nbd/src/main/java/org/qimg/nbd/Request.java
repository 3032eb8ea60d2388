package org.qimg.nbd;

import java.nio.ByteBuffer;

/**
 * One request of the transmission phase, as read from the wire.
 *
 * @param flags   command flags
 * @param type    the request type as sent
 * @param command the command of that type, or null when unknown
 * @param cookie  the client's handle, echoed in the reply
 * @param offset  u64 offset, unsigned
 * @param length  u32 length, unsigned
 * @param payload the data of an NBD_CMD_WRITE (a pooled buffer), else null
 */
record Request(int flags, int type, NbdCommand command, long cookie, long offset, long length, ByteBuffer payload) {

    boolean has(int flag) {
        return (flags & flag) != 0;
    }

    /** {@code [offset, offset + length)} lies inside a device of {@code size} bytes. */
    boolean inside(long size) {
        return Long.compareUnsigned(offset, size) <= 0 && length <= size - offset;
    }

    @Override
    public String toString() {
        return (command == null ? "command " + type : "NBD_CMD_" + command) + " flags 0x"
                + Integer.toHexString(flags) + " offset " + Long.toUnsignedString(offset) + " length " + length;
    }
}
