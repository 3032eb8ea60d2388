package org.qimg.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

import org.qimg.ImageException;
import org.qimg.format.Bitmap;
import org.qimg.format.BitmapDirectory;
import org.qimg.format.Qcow2Header;
import org.qimg.format.Snapshot;
import org.qimg.format.SnapshotTable;
import org.qimg.host.HostFile;

/**
 * What one image file says about itself, read without opening its backing file or data file (as
 * {@code qemu-img info} does): so an image whose backing file is missing can still be described.
 *
 * @param filename            the name as given
 * @param format              "qcow2" or "raw"
 * @param virtualSize         the guest size in bytes (a raw file's size rounded up to 512, as QEMU's)
 * @param actualSize          bytes the file occupies on the host (st_blocks * 512)
 * @param header              the qcow2 header, or null for raw
 * @param fullBackingFilename the backing file name resolved against this file's folder, or null
 * @param snapshots           the internal snapshots, in table order
 * @param bitmaps             the persistent bitmaps, in directory order (none unless the bitmaps
 *                            autoclear bit vouches for the extension, as QEMU requires)
 */
public record ImageDescription(String filename, String format, long virtualSize, long actualSize,
                               Qcow2Header header, String fullBackingFilename, List<Snapshot> snapshots,
                               List<Bitmap> bitmaps) {
    /** QEMU caps the bitmap directory at 64 MiB (QCOW2_MAX_BITMAP_DIRECTORY_SIZE). */
    static final long MAX_BITMAP_DIRECTORY = 64L << 20;

    /** Reads the description of {@code name}; {@code format} is "qcow2", "raw", or null to probe. */
    public static ImageDescription read(String name, String format) throws IOException {
        return read(name, format, false);
    }

    /**
     * As {@link #read(String, String)}; unless {@code forceShare} (qemu-img info's -U), holding the
     * image's locks while it reads it, as qemu-img info does: an image that another process writes is
     * refused.
     */
    public static ImageDescription read(String name, String format, boolean forceShare) throws IOException {
        if (format != null && !format.equals("qcow2") && !format.equals("raw")) {
            throw new ImageException.Unsupported("'" + name + "': unsupported image format '" + format + "'");
        }
        Path path = Path.of(name);
        if (Files.isDirectory(path)) {
            throw new ImageException("Could not open '" + name + "': is a directory");
        }
        HostFile file;
        try {
            file = HostFile.openReadOnly(path, name);
        } catch (NoSuchFileException e) {
            throw new ImageException("Could not open '" + name + "': No such file or directory");
        }
        try (file) {
            ByteBuffer head = ChainOpener.readHead(file);
            String actualFormat = format != null ? format : ChainOpener.probe(head, name);
            if (!forceShare) {
                file.lock(HostFile.Use.of(actualFormat));
            }
            long actualSize = file.allocatedBytes();
            if (actualFormat.equals("raw")) {
                return new ImageDescription(name, "raw", (file.size() + 511) & ~511L, actualSize, null, null,
                        List.of(), List.of());
            }
            if (!Qcow2Header.hasMagic(head)) {
                throw new ImageException("'" + name + "': Image is not in qcow2 format");
            }
            Qcow2Header header = Qcow2Header.parse(head, file.size(), name);
            String fullBacking = header.backingFile() == null ? null : ChainOpener.combine(name, header.backingFile());
            return new ImageDescription(name, "qcow2", header.virtualSize(), actualSize, header, fullBacking,
                    snapshots(file, header), bitmaps(file, header));
        }
    }

    private static List<Snapshot> snapshots(HostFile file, Qcow2Header header) throws IOException {
        if (header.nbSnapshots() == 0) {
            return List.of();
        }
        long offset = header.snapshotsOffset();
        ByteBuffer table = file.slice(offset, file.size() - offset).asByteBuffer();
        return SnapshotTable.parse(table, header.nbSnapshots(), offset, file.name());
    }

    private static List<Bitmap> bitmaps(HostFile file, Qcow2Header header) throws IOException {
        if (header.bitmapCount() == 0 || (header.autoclearFeatures() & Qcow2Header.AUTOCLEAR_BITMAPS) == 0) {
            return List.of();
        }
        long offset = header.bitmapDirectoryOffset();
        long size = header.bitmapDirectorySize();
        if (size <= 0 || size > MAX_BITMAP_DIRECTORY || offset <= 0 || (offset & (header.clusterSize() - 1)) != 0
                || offset > file.size() || size > file.size() - offset) {
            throw new ImageException.Corrupt(file.name() + ": bitmap directory at 0x" + Long.toHexString(offset)
                    + " (0x" + Long.toHexString(size) + " bytes) is unaligned, too large or past the end of the file");
        }
        return BitmapDirectory.parse(file.slice(offset, size).asByteBuffer(), header.bitmapCount(), offset,
                file.name());
    }
}
