package org.qimg.nbd.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * qemu-nbd serving an image read-only on a Unix socket, persistent and shared, the reference the
 * tests compare qimg's server with. Bounded in time and killed on close.
 */
public final class QemuNbd implements AutoCloseable {
    private final Process process;
    private final Path socket;

    private QemuNbd(Process process, Path socket) {
        this.process = process;
        this.socket = socket;
    }

    public static QemuNbd start(Path image, String format, Path socket, boolean allocationDepth, String exportName)
            throws IOException {
        return start(image, format, socket, allocationDepth, exportName, null);
    }

    public static QemuNbd start(Path image, String format, Path socket, boolean allocationDepth, String exportName,
                                String description) throws IOException {
        return start(image, format, socket, allocationDepth, exportName, description, true);
    }

    /** {@code qemu-nbd [-r] -t -e 0 [-A] [-x NAME] [-D DESCRIPTION] -k SOCKET -f FORMAT IMAGE}. */
    public static QemuNbd start(Path image, String format, Path socket, boolean allocationDepth, String exportName,
                                String description, boolean readOnly) throws IOException {
        List<String> command = new ArrayList<>(List.of("timeout", "60", "qemu-nbd", "-t", "-e", "0"));
        if (readOnly) {
            command.add("-r");
        }
        if (allocationDepth) {
            command.add("-A");
        }
        if (exportName != null) {
            command.add("-x");
            command.add(exportName);
        }
        if (description != null) {
            command.add("-D");
            command.add(description);
        }
        command.addAll(List.of("-k", socket.toString(), "-f", format, image.toString()));
        Files.deleteIfExists(socket);
        Process process;
        try {
            process = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        } catch (IOException e) {
            throw new AssertionError("cannot run qemu-nbd (is it installed? .ci/run installs it): " + e.getMessage(), e);
        }
        QemuNbd server = new QemuNbd(process, socket);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Files.exists(socket)) {
            if (!process.isAlive()) {
                throw new AssertionError("qemu-nbd exited " + process.exitValue() + ": " + String.join(" ", command));
            }
            if (System.nanoTime() > deadline) {
                server.close();
                throw new AssertionError("qemu-nbd did not create " + socket);
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                server.close();
                throw new AssertionError(e);
            }
        }
        return server;
    }

    public Path socket() {
        return socket;
    }

    public String uri() {
        return NbdUris.unix(socket);
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        try {
            Files.deleteIfExists(socket);
        } catch (IOException ignored) {
            // the next start deletes it too
        }
    }
}
