package org.qimg.format;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.qimg.ImageException;

/**
 * Decodes the internal snapshot table (qcow2.txt, "Snapshots"): {@code nb_snapshots} variable-length
 * entries, each padded to a multiple of 8 bytes. Pure code: it reads a buffer, does no I/O.
 */
public final class SnapshotTable {
    /** The fixed part of an entry, before the extra data. */
    static final int FIXED_BYTES = 40;
    /** QEMU refuses more extra data than this per entry (QCOW_MAX_SNAPSHOT_EXTRA_DATA). */
    static final int MAX_EXTRA_DATA = 1024;

    private SnapshotTable() {
    }

    /**
     * Decodes {@code count} entries from {@code table}, whose position is the table's first byte and
     * whose limit is the end of the file; {@code tableOffset} is that first byte's offset in the file.
     */
    public static List<Snapshot> parse(ByteBuffer table, int count, long tableOffset, String file)
            throws ImageException {
        ByteBuffer b = table.slice().order(ByteOrder.BIG_ENDIAN);
        List<Snapshot> snapshots = new ArrayList<>(count);
        int at = 0;
        for (int i = 0; i < count; i++) {
            String where = "snapshot " + i + " at 0x" + Long.toHexString(tableOffset + at);
            need(b, at, FIXED_BYTES, file, where);
            long l1TableOffset = b.getLong(at);
            int l1Size = b.getInt(at + 8);
            int idLength = Short.toUnsignedInt(b.getShort(at + 12));
            int nameLength = Short.toUnsignedInt(b.getShort(at + 14));
            long dateSeconds = Integer.toUnsignedLong(b.getInt(at + 16));
            long dateNanos = Integer.toUnsignedLong(b.getInt(at + 20));
            long vmClockNanos = b.getLong(at + 24);
            long vmStateSize = Integer.toUnsignedLong(b.getInt(at + 32));
            int extraLength = b.getInt(at + 36);
            if (extraLength < 0 || extraLength > MAX_EXTRA_DATA) {
                throw corrupt(file, where + ": extra data size " + Integer.toUnsignedString(extraLength)
                        + " exceeds " + MAX_EXTRA_DATA);
            }
            int extra = at + FIXED_BYTES;
            need(b, extra, (long) extraLength + idLength + nameLength, file, where);
            // Extra data (qcow2.txt): 64-bit VM state size, virtual disk size, icount; each optional.
            if (extraLength >= 8) {
                vmStateSize = b.getLong(extra);
            }
            long diskSize = extraLength >= 16 ? b.getLong(extra + 8) : -1;
            long icount = extraLength >= 24 ? b.getLong(extra + 16) : -1;
            int idAt = extra + extraLength;
            String id = string(b, idAt, idLength);
            String name = string(b, idAt + idLength, nameLength);
            snapshots.add(new Snapshot(l1TableOffset, l1Size, id, name, dateSeconds, dateNanos, vmClockNanos,
                    vmStateSize, diskSize, icount));
            long end = (long) idAt + idLength + nameLength;
            end = (end + 7) & ~7L;
            if (end > Integer.MAX_VALUE) {
                throw corrupt(file, where + ": the snapshot table is too large");
            }
            at = (int) end;
        }
        return List.copyOf(snapshots);
    }

    private static void need(ByteBuffer b, int at, long length, String file, String where) throws ImageException {
        if (at + length > b.limit()) {
            throw corrupt(file, where + " runs past the end of the file");
        }
    }

    private static String string(ByteBuffer b, int at, int length) {
        byte[] raw = new byte[length];
        b.get(at, raw);
        return new String(raw, StandardCharsets.UTF_8);
    }

    private static ImageException corrupt(String file, String message) {
        return new ImageException.Corrupt(file + ": " + message);
    }
}
