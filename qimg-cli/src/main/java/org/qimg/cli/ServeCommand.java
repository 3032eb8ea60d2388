package org.qimg.cli;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;

import org.qimg.BlockDevice;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.nbd.Export;
import org.qimg.nbd.NbdServer;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code qimg serve}: exports an image and its backing chain over NBD, with qemu-nbd's flag spelling.
 * Unlike qemu-nbd, TCP listens on 127.0.0.1 unless {@code -b} names another address.
 */
@Command(name = "serve", description = "Export an image (and its backing chain) over NBD, like qemu-nbd.")
final class ServeCommand implements Callable<Integer> {
    @Option(names = {"-r", "--read-only"}, description = "export read-only (else the image is open for writing)")
    boolean readOnly;

    @Option(names = {"-k", "--socket"}, paramLabel = "PATH", description = "listen on this Unix socket")
    Path socket;

    @Option(names = {"-b", "--bind"}, paramLabel = "ADDR", description = "TCP address to listen on (default 127.0.0.1)")
    String bind;

    @Option(names = {"-p", "--port"}, paramLabel = "PORT", description = "TCP port to listen on (default 10809)")
    Integer port;

    @Option(names = {"-x", "--export-name"}, paramLabel = "NAME", defaultValue = "",
            description = "the export's name (default: the empty name)")
    String exportName;

    @Option(names = {"-D", "--description"}, paramLabel = "TEXT", description = "the export's description")
    String description;

    @Option(names = {"-t", "--persistent"}, description = "keep serving after the last client disconnects")
    boolean persistent;

    @Option(names = {"-e", "--shared"}, paramLabel = "NUM", defaultValue = "1",
            description = "serve up to NUM clients at once, 0 for no limit (default 1)")
    int shared;

    @Option(names = {"-A", "--allocation-depth"}, description = "offer the qemu:allocation-depth context")
    boolean allocationDepth;

    @Option(names = {"-f", "--format"}, paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    @Override
    public Integer call() throws IOException, InterruptedException {
        if (shared < 0) {
            throw new IllegalArgumentException("Invalid shared device number '" + shared + "'");
        }
        if (socket != null && (bind != null || port != null)) {
            throw new IllegalArgumentException("-k cannot be used with -b or -p");
        }
        SocketAddress address = socket != null ? UnixDomainSocketAddress.of(socket) : tcpAddress();
        Cli.checkFormat(format);
        // Without -r the image is open for writing, as qemu-nbd's is; its backing images never are.
        BlockDevice device = Images.open(image, OpenOptions.defaults().withFormat(format).withReadOnly(readOnly));
        AtomicBoolean finished = new AtomicBoolean();
        NbdServer server;
        try {
            Export export = new Export(exportName, description, device, readOnly, allocationDepth, shared != 1);
            NbdServer.Settings settings = NbdServer.Settings.defaults().withPersistent(persistent).withMaxClients(shared);
            server = NbdServer.start(address, export, settings);
        } catch (IOException | RuntimeException e) {
            device.close();
            throw e;
        }
        // SIGTERM and SIGINT run the shutdown hooks: finish the requests in flight, flush, close.
        Thread hook = new Thread(() -> finish(server, device, finished), "qimg-serve-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        server.awaitTermination();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            return 0; // the JVM is shutting down: the hook does the rest
        }
        finish(server, device, finished);
        return 0;
    }

    private InetSocketAddress tcpAddress() throws UnknownHostException {
        int p = port == null ? 10809 : port;
        if (p < 0 || p > 65535) {
            throw new IllegalArgumentException("Invalid port '" + p + "'");
        }
        return new InetSocketAddress(InetAddress.getByName(bind == null ? "127.0.0.1" : bind), p);
    }

    private static void finish(NbdServer server, BlockDevice device, AtomicBoolean finished) {
        server.close();
        if (!finished.compareAndSet(false, true)) {
            return;
        }
        try {
            try {
                device.flush();
            } finally {
                device.close();
            }
        } catch (IOException e) {
            System.err.println("qimg: " + Main.oneLine(e));
        }
    }
}
