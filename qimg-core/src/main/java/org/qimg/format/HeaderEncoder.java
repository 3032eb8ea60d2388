package org.qimg.format;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.qimg.ImageException;

/**
 * Encodes the first cluster of a qcow2 image (qcow2.txt, "Header" and "Header extensions") the way
 * QEMU 7.2's qcow2_update_header lays it out: a v3 header of 112 bytes (compression type and
 * padding), then the backing-format, external-data-file and feature-name-table extensions, the end
 * marker, and the backing file name right after it. Pure code, no I/O.
 */
public final class HeaderEncoder {
    /** QEMU writes a v3 header of 104 bytes plus the compression type byte, padded to 8. */
    public static final int V3_HEADER_LENGTH = 112;

    /** The names QEMU 7.2 writes into the feature-name table, in its order. */
    private static final Object[][] FEATURE_NAMES = {
            {0, 0, "dirty bit"}, {0, 1, "corrupt bit"}, {0, 2, "external data file"}, {0, 3, "compression type"},
            {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"}, {2, 0, "bitmaps"}, {2, 1, "raw external data"},
    };
    private static final int FEATURE_ENTRY = 48;

    private HeaderEncoder() {
    }

    /**
     * The fields of a header to encode.
     *
     * @param backingFile   null for none
     * @param backingFormat null for none (only written with a backing file)
     * @param dataFile      null for none
     */
    public record Fields(int version, int clusterBits, long virtualSize, int l1Size, long l1TableOffset,
                         long refcountTableOffset, int refcountTableClusters, long incompatibleFeatures,
                         long compatibleFeatures, long autoclearFeatures, int refcountOrder, int compressionType,
                         String backingFile, String backingFormat, String dataFile) {
    }

    /** The header cluster: {@code 1 << clusterBits} bytes. */
    public static byte[] encode(Fields f) throws ImageException {
        int clusterSize = 1 << f.clusterBits();
        ByteBuffer b = ByteBuffer.allocate(clusterSize).order(ByteOrder.BIG_ENDIAN);
        b.putInt(0, Qcow2Header.MAGIC);
        b.putInt(4, f.version());
        b.putInt(20, f.clusterBits());
        b.putLong(24, f.virtualSize());
        b.putInt(32, 0); // crypt_method: none
        b.putInt(36, f.l1Size());
        b.putLong(40, f.l1TableOffset());
        b.putLong(48, f.refcountTableOffset());
        b.putInt(56, f.refcountTableClusters());
        b.putInt(60, 0); // nb_snapshots
        b.putLong(64, 0); // snapshots_offset
        int at;
        if (f.version() >= 3) {
            b.putLong(72, f.incompatibleFeatures());
            b.putLong(80, f.compatibleFeatures());
            b.putLong(88, f.autoclearFeatures());
            b.putInt(96, f.refcountOrder());
            b.putInt(100, V3_HEADER_LENGTH);
            b.put(104, (byte) f.compressionType());
            at = V3_HEADER_LENGTH;
        } else {
            at = Qcow2Header.V2_HEADER_LENGTH;
        }
        byte[] backingName = f.backingFile() == null ? null : f.backingFile().getBytes(StandardCharsets.UTF_8);
        if (backingName != null && backingName.length > Qcow2Header.MAX_BACKING_NAME) {
            throw new ImageException("backing file name '" + f.backingFile() + "' is " + backingName.length
                    + " bytes long; qcow2 allows at most " + Qcow2Header.MAX_BACKING_NAME);
        }
        int need = at + 8 + (backingName == null ? 0 : backingName.length);
        byte[] format = backingName != null && f.backingFormat() != null
                ? f.backingFormat().getBytes(StandardCharsets.UTF_8) : null;
        byte[] data = f.dataFile() == null ? null : f.dataFile().getBytes(StandardCharsets.UTF_8);
        boolean featureTable = f.version() >= 3 && clusterSize > 4096; // QEMU leaves it out of small clusters
        need += extensionLength(format) + extensionLength(data)
                + (featureTable ? 8 + FEATURE_NAMES.length * FEATURE_ENTRY : 0);
        if (need > clusterSize) {
            throw new ImageException("the header, its extensions and the backing file name need " + need
                    + " bytes, more than the cluster size " + clusterSize);
        }
        at = putExtension(b, at, Qcow2Header.EXT_BACKING_FORMAT, format);
        at = putExtension(b, at, Qcow2Header.EXT_DATA_FILE, data);
        if (featureTable) {
            byte[] table = new byte[FEATURE_NAMES.length * FEATURE_ENTRY];
            for (int i = 0; i < FEATURE_NAMES.length; i++) {
                table[i * FEATURE_ENTRY] = (byte) (int) (Integer) FEATURE_NAMES[i][0];
                table[i * FEATURE_ENTRY + 1] = (byte) (int) (Integer) FEATURE_NAMES[i][1];
                byte[] name = ((String) FEATURE_NAMES[i][2]).getBytes(StandardCharsets.US_ASCII);
                System.arraycopy(name, 0, table, i * FEATURE_ENTRY + 2, name.length);
            }
            at = putExtension(b, at, Qcow2Header.EXT_FEATURE_NAMES, table);
        }
        at += 8; // end marker: type 0, length 0
        if (backingName != null) {
            b.putLong(8, at);
            b.putInt(16, backingName.length);
            b.put(at, backingName);
        }
        return b.array();
    }

    private static int extensionLength(byte[] data) {
        return data == null ? 0 : 8 + ((data.length + 7) & ~7);
    }

    private static int putExtension(ByteBuffer b, int at, int type, byte[] data) {
        if (data == null) {
            return at;
        }
        b.putInt(at, type);
        b.putInt(at + 4, data.length);
        b.put(at + 8, data);
        return at + extensionLength(data);
    }
}
