package org.qimg.nbd.testing;

import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.nbd.Export;
import org.qimg.nbd.NbdServer;
import org.qimg.testing.CorpusImage;

/**
 * qimg's NBD server started in-process on a Unix socket, configured like {@link QemuNbd}
 * (read-only, persistent, shared): closing it stops the server and closes the device.
 */
public final class QimgNbd implements AutoCloseable {
    private final BlockDevice device;
    private final NbdServer server;
    private final Path socket;

    private QimgNbd(BlockDevice device, NbdServer server, Path socket) {
        this.device = device;
        this.server = server;
        this.socket = socket;
    }

    public static QimgNbd start(CorpusImage image, Path socket, boolean allocationDepth, String exportName)
            throws IOException {
        return start(image, socket, allocationDepth, exportName, null);
    }

    public static QimgNbd start(CorpusImage image, Path socket, boolean allocationDepth, String exportName,
                                String description) throws IOException {
        BlockDevice device = image.open();
        Export export = new Export(exportName == null ? "" : exportName, description, device, true, allocationDepth,
                true);
        return start(export, socket, NbdServer.Settings.defaults().withPersistent(true).withMaxClients(0));
    }

    /** Serves {@code image} for writing (qemu-nbd without -r, with -t -e 0). */
    public static QimgNbd startWritable(Path image, String format, Path socket) throws IOException {
        BlockDevice device = Images.open(image.toString(), OpenOptions.defaults().withFormat(format).writable());
        Export export = new Export("", null, device, false, false, true);
        return start(export, socket, NbdServer.Settings.defaults().withPersistent(true).withMaxClients(0));
    }

    /** Serves {@code export}; closing closes its device. */
    public static QimgNbd start(Export export, Path socket, NbdServer.Settings settings) throws IOException {
        try {
            NbdServer server = NbdServer.start(UnixDomainSocketAddress.of(socket), export, settings);
            return new QimgNbd(export.device(), server, socket);
        } catch (IOException | RuntimeException e) {
            export.device().close();
            throw e;
        }
    }

    public NbdServer server() {
        return server;
    }

    public Path socket() {
        return socket;
    }

    public String uri() {
        return NbdUris.unix(socket);
    }

    /** Stops the server, flushes and closes the device (what {@code qimg serve} does on SIGTERM). */
    @Override
    public void close() throws IOException {
        try {
            server.close();
            device.flush();
        } finally {
            device.close();
        }
    }
}
