package org.qimg.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.qimg.ImageException;
import org.qimg.OpenOptions;
import org.qimg.format.Qcow2Header;
import org.qimg.host.HostFile;

/**
 * Opens an image and its whole backing chain, bottom layer first: resolves relative backing paths
 * against the overlay's folder, honours the backing-format extension (probing the content when it is
 * absent), and refuses a chain that loops.
 */
public final class ChainOpener {
    private ChainOpener() {
    }

    public static Layer open(String name, OpenOptions options) throws IOException {
        // Follow the backing names top-down first, then open bottom-up so each layer gets its backing.
        if (options.forceShare() && !options.readOnly()) {
            throw new ImageException("Could not open '" + name + "': force-share=on can only be used with read-only images");
        }
        List<Pending> pending = new ArrayList<>();
        Set<Path> seen = new HashSet<>();
        String currentName = name;
        String currentFormat = options.format();
        String referrer = null;
        List<HostFile> opened = new ArrayList<>();
        try {
            while (true) {
                Path path = Path.of(currentName);
                Path real;
                try {
                    real = path.toRealPath();
                } catch (NoSuchFileException e) {
                    throw new ImageException(referrer == null ? "Could not open '" + currentName + "': No such file or directory"
                            : "Could not open backing file '" + currentName + "' of '" + referrer + "': No such file or directory");
                }
                if (Files.isDirectory(real)) {
                    throw new ImageException("Could not open '" + currentName + "': is a directory");
                }
                if (!seen.add(real)) {
                    throw new ImageException("backing chain of '" + name + "' loops: '" + currentName
                            + "' is already part of it");
                }
                boolean top = referrer == null;
                HostFile file = top && !options.readOnly() ? HostFile.openReadWrite(path, currentName)
                        : HostFile.openReadOnly(path, currentName);
                opened.add(file);
                if (options.unsafeCache()) {
                    file.disableSyncs();
                }
                ByteBuffer first = readHead(file);
                String format = currentFormat != null ? currentFormat : probe(first, currentName);
                if (!options.forceShare() && (format.equals("raw") || format.equals("qcow2"))) {
                    file.lock(HostFile.Use.of(format));
                }
                if (format.equals("raw")) {
                    pending.add(new Pending(file, null, null));
                    break;
                }
                if (!format.equals("qcow2")) {
                    throw new ImageException.Unsupported("'" + currentName + "': unsupported image format '" + format + "'");
                }
                if (!Qcow2Header.hasMagic(first)) {
                    throw new ImageException("'" + currentName + "': Image is not in qcow2 format");
                }
                Qcow2Header header = Qcow2Header.parse(first, file.size(), currentName);
                HostFile dataFile = file;
                if (header.hasDataFile()) {
                    // QEMU opens the data-file name as it is stored: a relative name is relative to
                    // the working directory, not to the image's folder (unlike backing files).
                    dataFile = openDataFile(header.dataFile(), currentName, file.isWritable(), options.forceShare());
                    opened.add(dataFile);
                    if (options.unsafeCache()) {
                        dataFile.disableSyncs();
                    }
                }
                pending.add(new Pending(file, header, dataFile));
                if (header.backingFile() == null) {
                    break;
                }
                if (header.backingFile().isEmpty()) {
                    throw new ImageException.Corrupt("'" + currentName + "': empty backing file name");
                }
                referrer = currentName;
                currentName = combine(currentName, header.backingFile());
                currentFormat = header.backingFormat();
                if (currentFormat != null && !currentFormat.equals("qcow2") && !currentFormat.equals("raw")) {
                    throw new ImageException.Unsupported("backing file '" + currentName + "' of '" + referrer
                            + "' has unsupported format '" + currentFormat + "'");
                }
            }
            Layer below = null;
            for (int i = pending.size() - 1; i >= 0; i--) {
                Pending p = pending.get(i);
                below = p.header == null ? new RawLayer(p.file)
                        : new Qcow2Layer(p.file, p.header, p.dataFile, below, options.l2CacheBytes());
            }
            return below;
        } catch (IOException | RuntimeException e) {
            for (HostFile f : opened) {
                try {
                    f.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    private record Pending(HostFile file, Qcow2Header header, HostFile dataFile) {
    }

    /**
     * Opens the external data file {@code dataName} of {@code imageName} as QEMU does: the name as it is
     * stored (a relative one is relative to the working directory, not to the image's folder), locked
     * as a data file unless {@code forceShare}. A missing one fails the open of the image.
     */
    static HostFile openDataFile(String dataName, String imageName, boolean writable, boolean forceShare)
            throws IOException {
        HostFile data;
        try {
            data = writable ? HostFile.openReadWrite(Path.of(dataName), dataName)
                    : HostFile.openReadOnly(Path.of(dataName), dataName);
        } catch (NoSuchFileException e) {
            throw new ImageException("Could not open data file '" + dataName + "' of '" + imageName
                    + "': No such file or directory");
        }
        if (!forceShare) {
            try {
                data.lock(HostFile.Use.DATA_FILE);
            } catch (IOException | RuntimeException e) {
                data.close();
                throw e;
            }
        }
        return data;
    }

    static ByteBuffer readHead(HostFile file) throws IOException {
        int length = (int) Math.min(file.size(), 1L << Qcow2Header.MAX_CLUSTER_BITS);
        ByteBuffer head = ByteBuffer.allocate(length);
        file.read(0, head);
        return head.flip();
    }

    /** Content probing, as QEMU does when no format is given: qcow2 by its magic, other known formats refused. */
    static String probe(ByteBuffer head, String name) throws ImageException {
        if (Qcow2Header.hasMagic(head)) {
            return "qcow2";
        }
        byte[] magic = new byte[Math.min(8, head.remaining())];
        head.get(head.position(), magic);
        String text = new String(magic, StandardCharsets.ISO_8859_1);
        if (text.startsWith("QFI")) {
            throw new ImageException.Unsupported("'" + name + "': qcow version 1 images are not supported");
        }
        for (String other : new String[] {"KDMV", "vhdxfile", "conectix", "WithoutF", "WithouFr", "QED\0"}) {
            if (text.startsWith(other)) {
                throw new ImageException.Unsupported("'" + name + "': image format with magic '" + other.strip()
                        + "' is not supported (qcow2 and raw are)");
            }
        }
        return "raw";
    }

    /** QEMU's path_combine: a relative name is taken relative to the folder of the file that names it. */
    static String combine(String referrer, String name) {
        if (name.startsWith("/")) {
            return name;
        }
        int slash = referrer.lastIndexOf('/');
        return slash < 0 ? name : referrer.substring(0, slash + 1) + name;
    }
}
