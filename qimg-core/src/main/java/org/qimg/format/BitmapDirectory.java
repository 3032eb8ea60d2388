package org.qimg.format;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.qimg.ImageException;

/**
 * Decodes the persistent-bitmap directory (qcow2.txt, "Bitmap directory"): variable-length entries,
 * each padded to a multiple of 8 bytes. Pure code: it reads a buffer, does no I/O.
 */
public final class BitmapDirectory {
    static final int FIXED_BYTES = 24;
    /** QEMU's limits: 65535 bitmaps, names of 1023 bytes, granularity 2^9 … 2^31. */
    static final int MAX_BITMAPS = 65535;
    static final int MAX_NAME = 1023;
    static final int MIN_GRANULARITY_BITS = 9;
    static final int MAX_GRANULARITY_BITS = 31;

    private BitmapDirectory() {
    }

    /**
     * Decodes {@code count} entries from {@code directory}, which holds exactly the directory
     * ({@code bitmap_directory_size} bytes) found at {@code directoryOffset} in the file.
     */
    public static List<Bitmap> parse(ByteBuffer directory, int count, long directoryOffset, String file)
            throws ImageException {
        if (count < 1 || count > MAX_BITMAPS) {
            throw corrupt(file, "bitmap count " + Integer.toUnsignedString(count) + " out of range 1.." + MAX_BITMAPS);
        }
        ByteBuffer b = directory.slice().order(ByteOrder.BIG_ENDIAN);
        List<Bitmap> bitmaps = new ArrayList<>(count);
        int at = 0;
        for (int i = 0; i < count; i++) {
            String where = "bitmap directory entry " + i + " at 0x" + Long.toHexString(directoryOffset + at);
            if (at + FIXED_BYTES > b.limit()) {
                throw corrupt(file, where + " runs past the end of the directory");
            }
            long tableOffset = b.getLong(at);
            int tableSize = b.getInt(at + 8);
            int flags = b.getInt(at + 12);
            int type = b.get(at + 16) & 0xFF;
            int granularityBits = b.get(at + 17) & 0xFF;
            int nameLength = Short.toUnsignedInt(b.getShort(at + 18));
            long extraLength = Integer.toUnsignedLong(b.getInt(at + 20));
            if (granularityBits < MIN_GRANULARITY_BITS || granularityBits > MAX_GRANULARITY_BITS) {
                throw corrupt(file, where + ": granularity_bits " + granularityBits + " out of range "
                        + MIN_GRANULARITY_BITS + ".." + MAX_GRANULARITY_BITS);
            }
            if (nameLength == 0 || nameLength > MAX_NAME) {
                throw corrupt(file, where + ": name size " + nameLength + " out of range 1.." + MAX_NAME);
            }
            long nameAt = at + FIXED_BYTES + extraLength;
            long end = nameAt + nameLength;
            if (end > b.limit()) {
                throw corrupt(file, where + " runs past the end of the directory");
            }
            byte[] raw = new byte[nameLength];
            b.get((int) nameAt, raw);
            bitmaps.add(new Bitmap(new String(raw, StandardCharsets.UTF_8), tableOffset, tableSize, flags, type,
                    granularityBits));
            at = (int) ((end + 7) & ~7L);
        }
        return List.copyOf(bitmaps);
    }

    private static ImageException corrupt(String file, String message) {
        return new ImageException.Corrupt(file + ": " + message);
    }
}
