package org.qimg.format;

/**
 * What one (sub)cluster of a qcow2 image is, after its L2 entry has been classified. Every path —
 * read, seek, map, copy — switches on this and never re-tests raw L2 bits.
 */
public enum SubclusterType {
    /** No host cluster, no zero flag: the backing image (or zeroes) supplies it. */
    UNALLOCATED_PLAIN,
    /** The host cluster exists but this subcluster is not allocated in it: the backing image supplies it. */
    UNALLOCATED_ALLOC,
    /** Reads as zeroes, no host cluster. */
    ZERO_PLAIN,
    /** Reads as zeroes over a preallocated host cluster. */
    ZERO_ALLOC,
    /** Data stored uncompressed at the host offset. */
    NORMAL,
    /** Data stored as a compressed cluster. */
    COMPRESSED;

    /** Whether the type carries a host offset the map reports (QEMU's BDRV_BLOCK_OFFSET_VALID). */
    public boolean hasHostOffset() {
        return this == NORMAL || this == ZERO_ALLOC || this == UNALLOCATED_ALLOC;
    }

    /** Whether this layer defines the content (data or zeroes) rather than deferring to its backing. */
    public boolean allocated() {
        return this != UNALLOCATED_PLAIN && this != UNALLOCATED_ALLOC;
    }

    public boolean zero() {
        return this == ZERO_PLAIN || this == ZERO_ALLOC;
    }

    public boolean data() {
        return this == NORMAL || this == COMPRESSED;
    }
}
