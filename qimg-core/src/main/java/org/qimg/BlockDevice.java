package org.qimg;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.OptionalLong;

/**
 * A virtual disk: an image with its whole backing chain, seen as {@link #size()} guest bytes.
 * Safe for use from many threads at once.
 *
 * <p>Seeks follow Linux lseek(2) with SEEK_DATA / SEEK_HOLE: a negative offset is an invalid argument
 * ({@link IllegalArgumentException}, EINVAL); an offset at or beyond the size has no answer (an empty
 * result, ENXIO); the end of the device counts as a hole.
 */
public interface BlockDevice extends Closeable {

    /** The virtual size in bytes. */
    long size();

    /** Whether writes are refused. */
    boolean isReadOnly();

    /**
     * Reads {@code dst.remaining()} bytes from {@code guestOffset} into {@code dst}, advancing its
     * position. The range must lie inside the device.
     */
    void read(long guestOffset, ByteBuffer dst) throws IOException;

    /** The smallest data offset {@code >= guestOffset}; empty (ENXIO) when there is none. */
    OptionalLong seekData(long guestOffset) throws IOException;

    /**
     * The smallest hole offset {@code >= guestOffset}, the end of the device counting as a hole;
     * empty (ENXIO) when {@code guestOffset >= size()}.
     */
    OptionalLong seekHole(long guestOffset) throws IOException;

    /**
     * The block status from {@code guestOffset}: an extent that starts there, no longer than
     * {@code maxLength} nor the rest of the device. Adjacent calls may return extents that
     * {@link Extent#mergeableWith merge}.
     */
    Extent extentAt(long guestOffset, long maxLength) throws IOException;

    /**
     * The merged extents that cover {@code [guestOffset, guestOffset + length)}, clipped to the device,
     * produced lazily in order.
     */
    ExtentStream map(long guestOffset, long length) throws IOException;

    /** Writes {@code src.remaining()} bytes at {@code guestOffset}. */
    default void write(long guestOffset, ByteBuffer src) throws IOException {
        throw new ImageException("the image is open read-only");
    }

    /** Makes the range read as zeroes; {@code mayUnmap} lets the image free the space it used. */
    default void writeZeroes(long guestOffset, long length, boolean mayUnmap) throws IOException {
        throw new ImageException("the image is open read-only");
    }

    /** Tells the image the range is no longer needed; its content afterwards reads as zeroes. */
    default void discard(long guestOffset, long length) throws IOException {
        throw new ImageException("the image is open read-only");
    }

    /** Makes every acknowledged write durable. */
    default void flush() throws IOException {
    }

    /**
     * The unit of {@link #writeCompressed}: the top image's cluster size, or 0 when the image cannot
     * store compressed data.
     */
    default long compressionUnit() {
        return 0;
    }

    /**
     * Writes one whole unit at {@code guestOffset} (a multiple of {@link #compressionUnit}) stored
     * compressed where that makes it smaller (as qemu-img convert -c does).
     */
    default void writeCompressed(long guestOffset, ByteBuffer unit) throws IOException {
        throw new ImageException("the image cannot store compressed data");
    }

    /** Changes the virtual size; shrinking is allowed only over holes. */
    default void resize(long newSize) throws IOException {
        throw new ImageException("the image is open read-only");
    }

    /** A cursor over merged extents; not thread-safe, one per caller. */
    interface ExtentStream {
        /** The next extent, or null at the end of the requested range. */
        Extent next() throws IOException;
    }
}
