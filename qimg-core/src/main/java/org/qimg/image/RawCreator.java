package org.qimg.image;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

import org.qimg.CreateOptions.Preallocation;
import org.qimg.ImageException;
import org.qimg.host.Fallocate;
import org.qimg.host.HostFile;

/**
 * Creates raw images as {@code qemu-img create -f raw} does: the size rounded up to 512 bytes, a
 * sparse file whose first block is written (QEMU's file driver does that so it can probe the
 * alignment later), or one whose space is allocated ({@code falloc}) or written with zeroes
 * ({@code full}).
 */
public final class RawCreator {
    private static final int FIRST_BLOCK = 4096;
    private static final int ZERO_CHUNK = 1 << 20;

    private RawCreator() {
    }

    /** Creates (or overwrites) {@code image}; returns the size it got. */
    public static long create(Path image, long size, Preallocation preallocation) throws IOException {
        if (size < 0) {
            throw new ImageException("Image size cannot be negative (size=" + size + ")");
        }
        if (size > Long.MAX_VALUE - 511) {
            throw new ImageException("The image size is too large (size=" + size + ")");
        }
        if (preallocation == Preallocation.METADATA) {
            throw new ImageException("Unsupported preallocation mode 'metadata' for raw images (off, falloc or full)");
        }
        long length = (size + 511) & ~511L;
        if (Files.isDirectory(image)) {
            throw new ImageException("Could not create '" + image + "': Is a directory");
        }
        // Locked first, as qemu-img does: an image in use elsewhere is refused before it is truncated
        // (and never deleted by the clean-up below).
        try (HostFile lock = HostFile.openForCreation(image, image.toString())) {
            boolean ok = false;
            try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
                file.setLength(0);
                switch (preallocation) {
                    case FALLOC -> Fallocate.allocate(image, 0, length);
                    case FULL -> {
                        ByteBuffer zeroes = ByteBuffer.allocate((int) Math.min(ZERO_CHUNK, Math.max(1, length)));
                        long at = 0;
                        while (at < length) {
                            zeroes.clear().limit((int) Math.min(zeroes.capacity(), length - at));
                            while (zeroes.hasRemaining()) {
                                at += file.getChannel().write(zeroes, at);
                            }
                        }
                    }
                    default -> startSparse(lock, length);
                }
                file.getChannel().force(false);
                ok = true;
            } finally {
                if (!ok) {
                    Files.deleteIfExists(image);
                }
            }
        }
        return length;
    }

    /**
     * Makes {@code file} (open for writing, with the creator's locks) a sparse file of {@code length}
     * bytes, empty but for its first block, which is written as QEMU's file driver writes it. The file
     * is emptied through a descriptor of its own: ext4 flushes a file truncated to zero when that
     * descriptor closes (its auto_da_alloc rule), which through {@code file} would start writing back
     * all that is written to it afterwards.
     */
    public static void startSparse(HostFile file, long length) throws IOException {
        try (RandomAccessFile empty = new RandomAccessFile(file.path().toFile(), "rw")) {
            empty.setLength(0);
        }
        file.setLength(length);
        if (length > 0) {
            file.write(0, ByteBuffer.allocate((int) Math.min(FIRST_BLOCK, length)));
        }
    }
}
