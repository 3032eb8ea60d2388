package org.qimg;

/**
 * How to open an image.
 *
 * @param format       "qcow2", "raw", or null to probe the file's content
 * @param l2CacheBytes the L2-table cache of each qcow2 layer, in bytes (QEMU's l2-cache-size)
 * @param readOnly     refuse writes; backing images are always opened read-only
 * @param forceShare   take no image locks (qemu-img's -U): read an image another process writes
 */
public record OpenOptions(String format, long l2CacheBytes, boolean readOnly, boolean forceShare) {
    /** QEMU's default ceiling for the L2 cache on Linux: 32 MiB. */
    public static final long DEFAULT_L2_CACHE_BYTES = 32L << 20;

    public OpenOptions {
        if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
            throw new IllegalArgumentException("unknown image format '" + format + "' (qcow2 or raw)");
        }
        if (l2CacheBytes < 1) {
            throw new IllegalArgumentException("L2 cache size " + l2CacheBytes + " must be positive");
        }
    }

    /** Probed format, QEMU's default cache size, read-only. */
    public static OpenOptions defaults() {
        return new OpenOptions(null, DEFAULT_L2_CACHE_BYTES, true, false);
    }

    public OpenOptions withFormat(String newFormat) {
        return new OpenOptions(newFormat, l2CacheBytes, readOnly, forceShare);
    }

    public OpenOptions withL2CacheBytes(long bytes) {
        return new OpenOptions(format, bytes, readOnly, forceShare);
    }

    public OpenOptions withReadOnly(boolean value) {
        return new OpenOptions(format, l2CacheBytes, value, forceShare);
    }

    public OpenOptions withForceShare(boolean value) {
        return new OpenOptions(format, l2CacheBytes, readOnly, value);
    }

    /** The same options for writing. */
    public OpenOptions writable() {
        return withReadOnly(false);
    }
}
