package org.qimg;

/**
 * How to open an image.
 *
 * @param format       "qcow2", "raw", or null to probe the file's content
 * @param l2CacheBytes the L2-table cache of each qcow2 layer, in bytes (QEMU's l2-cache-size)
 * @param readOnly     refuse writes; backing images are always opened read-only
 * @param forceShare   take no image locks (qemu-img's -U): read an image another process writes
 * @param unsafeCache  never wait for the disk (QEMU's cache=unsafe): flushes keep their write order
 *                     but do not sync, so a crash of the machine (not of the process) may lose data
 */
public record OpenOptions(String format, long l2CacheBytes, boolean readOnly, boolean forceShare,
                          boolean unsafeCache) {
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
        return new OpenOptions(null, DEFAULT_L2_CACHE_BYTES, true, false, false);
    }

    public OpenOptions withFormat(String newFormat) {
        return new OpenOptions(newFormat, l2CacheBytes, readOnly, forceShare, unsafeCache);
    }

    public OpenOptions withL2CacheBytes(long bytes) {
        return new OpenOptions(format, bytes, readOnly, forceShare, unsafeCache);
    }

    public OpenOptions withReadOnly(boolean value) {
        return new OpenOptions(format, l2CacheBytes, value, forceShare, unsafeCache);
    }

    public OpenOptions withForceShare(boolean value) {
        return new OpenOptions(format, l2CacheBytes, readOnly, value, unsafeCache);
    }

    public OpenOptions withUnsafeCache(boolean value) {
        return new OpenOptions(format, l2CacheBytes, readOnly, forceShare, value);
    }

    /** The same options for writing. */
    public OpenOptions writable() {
        return withReadOnly(false);
    }
}
