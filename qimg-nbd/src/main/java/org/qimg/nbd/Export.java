package org.qimg.nbd;

import java.util.EnumSet;
import java.util.Objects;
import java.util.Set;

import org.qimg.BlockDevice;

/**
 * What the server exports: one {@link BlockDevice} under a name.
 *
 * @param name            the export name clients ask for ("" is the default export)
 * @param description     shown by NBD_OPT_LIST and NBD_INFO_DESCRIPTION, or null
 * @param device          the device; the server reads and writes it and never closes it
 * @param readOnly        refuse writes even when the device accepts them (qemu-nbd's {@code -r})
 * @param allocationDepth offer the qemu:allocation-depth context (qemu-nbd's {@code -A})
 * @param multiConn       advertise NBD_FLAG_CAN_MULTI_CONN (set it when several clients may connect)
 */
public record Export(String name, String description, BlockDevice device, boolean readOnly,
                     boolean allocationDepth, boolean multiConn) {

    public Export {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(device, "device");
        if (Wire.utf8(name).length > Nbd.MAX_STRING) {
            throw new IllegalArgumentException("export name is longer than " + Nbd.MAX_STRING + " bytes");
        }
        if (description != null && Wire.utf8(description).length > Nbd.MAX_STRING) {
            throw new IllegalArgumentException("export description is longer than " + Nbd.MAX_STRING + " bytes");
        }
    }

    /** The default export ("") of {@code device}, with base:allocation only. */
    public static Export of(BlockDevice device) {
        return new Export("", null, device, false, false, false);
    }

    public Export withName(String newName) {
        return new Export(newName, description, device, readOnly, allocationDepth, multiConn);
    }

    public Export withDescription(String newDescription) {
        return new Export(name, newDescription, device, readOnly, allocationDepth, multiConn);
    }

    public Export withAllocationDepth(boolean on) {
        return new Export(name, description, device, readOnly, on, multiConn);
    }

    public Export withMultiConn(boolean on) {
        return new Export(name, description, device, readOnly, allocationDepth, on);
    }

    public Export withReadOnly(boolean on) {
        return new Export(name, description, device, on, allocationDepth, multiConn);
    }

    /** Whether writes are refused: asked for, or the device cannot take them. */
    boolean writesRefused() {
        return readOnly || device.isReadOnly();
    }

    Set<MetaContext> contexts() {
        return allocationDepth ? EnumSet.allOf(MetaContext.class) : EnumSet.of(MetaContext.BASE_ALLOCATION);
    }

    /**
     * The transmission flags. Like qemu-nbd 7.2, FLUSH, FUA and CACHE are offered on read-only exports
     * too (they are harmless there: a flush has nothing to do); commands that change the content
     * (TRIM, WRITE_ZEROES, FAST_ZERO) only on a writable device. DF needs structured replies.
     * CAN_MULTI_CONN holds for every export of this server: all connections share the one device
     * (one cache), so a flush on any connection covers the writes of all of them, which is what
     * the flag promises; qemu-nbd 7.1+ offers it likewise when its export is shared.
     */
    int transmissionFlags(boolean structuredReplies) {
        int flags = Nbd.FLAG_HAS_FLAGS | Nbd.FLAG_SEND_FLUSH | Nbd.FLAG_SEND_FUA | Nbd.FLAG_SEND_CACHE;
        if (structuredReplies) {
            flags |= Nbd.FLAG_SEND_DF;
        }
        if (writesRefused()) {
            flags |= Nbd.FLAG_READ_ONLY;
        } else {
            flags |= Nbd.FLAG_SEND_TRIM | Nbd.FLAG_SEND_WRITE_ZEROES | Nbd.FLAG_SEND_FAST_ZERO;
        }
        if (multiConn) {
            flags |= Nbd.FLAG_CAN_MULTI_CONN;
        }
        return flags;
    }
}
