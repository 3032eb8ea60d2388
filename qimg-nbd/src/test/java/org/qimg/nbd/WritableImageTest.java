package org.qimg.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.nbd.testing.QemuNbd;
import org.qimg.nbd.testing.QimgNbd;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/**
 * Writes through the server into real images (the engine's write path): the same qemu-io script run
 * on one copy directly and on another through qimg's server (qemu-io as the NBD client) leaves the
 * same content and a clean image; nbdcopy fills an empty image; a writable export looks to nbdinfo
 * as qemu-nbd's does.
 */
class WritableImageTest {
    @TempDir
    Path tmp;

    /** qemu-io commands: aligned and unaligned writes, zeroes with and without unmap, discards. */
    private static final String[] SCRIPT = {
        "write -P 0x11 0 64k", "write -P 0x22 1000 3000", "write -P 0x33 1M 200k", "write -z 1088k 64k",
        "write -z -u 2M 128k", "discard 1M 64k", "write -P 0x44 3M 4k", "write -P 0x55 4194303 1",
        "write -P 0x66 5M 1M", "write -z 5632k 4k", "discard 6M 64k", "flush",
    };

    private Path copy(Path source, String name) throws IOException {
        Path target = tmp.resolve(name);
        Files.copy(source, target);
        return target;
    }

    private static String[] ioCommand(String format, String target) {
        List<String> command = new ArrayList<>(List.of("qemu-io", "-f", format));
        for (String c : SCRIPT) {
            command.add("-c");
            command.add(c);
        }
        command.add(target);
        return command.toArray(String[]::new);
    }

    @Test
    void qemuIoThroughTheServerWritesWhatQemuIoWritesDirectly() throws IOException {
        // an overlay over a backing image, so that writes copy on write from the chain
        Path base = tmp.resolve("base.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "8M");
        Corpus.io(base, "write -P 0xa1 0 8M");
        for (String options : new String[] {"extended_l2=off", "extended_l2=on"}) {
            Path top = tmp.resolve("top.qcow2");
            Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", options, "-b", base.toString(), "-F", "qcow2",
                    top.toString(), "8M");
            Path direct = copy(top, "direct.qcow2");
            Path served = copy(top, "served.qcow2");
            Tools.run(ioCommand("qcow2", direct.toString()));
            try (QimgNbd server = QimgNbd.startWritable(served, "qcow2", tmp.resolve("w.sock"))) {
                String out = Tools.run(ioCommand("raw", server.uri()));
                assertThat(out).doesNotContain("error", "failed");
            }
            Tools.Result compare = Tools.exec(null, List.of("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
                    direct.toString(), served.toString()));
            assertThat(compare.exitCode()).as(options + ": " + compare.stdout() + compare.stderr()).isZero();
            Tools.Result check = Tools.exec(null, List.of("qemu-img", "check", "-f", "qcow2", served.toString()));
            assertThat(check.exitCode()).as(options + ": " + check.stdout() + check.stderr()).isZero();
            Files.delete(top);
            Files.delete(direct);
            Files.delete(served);
        }
    }

    @Test
    void nbdcopyFillsAnEmptyImage() throws IOException {
        Path source = tmp.resolve("source.raw");
        Tools.run("qemu-img", "create", "-q", "-f", "raw", source.toString(), "16M");
        Corpus.ioFmt(source, "raw", "write -P 0x31 0 1M", "write -P 0x32 3M 64k", "write -P 0x33 15M 1M");
        Path target = tmp.resolve("target.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", target.toString(), "16M");
        try (QimgNbd server = QimgNbd.startWritable(target, "qcow2", tmp.resolve("c.sock"))) {
            Tools.run("nbdcopy", "--flush", source.toString(), server.uri());
        }
        Tools.Result compare = Tools.exec(null, List.of("qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                source.toString(), target.toString()));
        assertThat(compare.exitCode()).as(compare.stdout() + compare.stderr()).isZero();
        assertThat(Tools.exec(null, List.of("qemu-img", "check", target.toString())).exitCode()).isZero();
    }

    @Test
    void writableExportLooksLikeQemuNbds() throws IOException {
        Path image = tmp.resolve("w.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "4M");
        Corpus.io(image, "write -P 0x41 0 64k");
        Path qemuSocket = tmp.resolve("q.sock");
        Path qimgSocket = tmp.resolve("j.sock");
        String expected;
        try (QemuNbd qemu = QemuNbd.start(image, "qcow2", qemuSocket, false, null, null, false)) {
            expected = Tools.run("nbdinfo", "--json", qemu.uri()).replace(qemuSocket.toString(), "SOCKET");
        }
        try (QimgNbd qimg = QimgNbd.startWritable(image, "qcow2", qimgSocket)) {
            String actual = Tools.run("nbdinfo", "--json", qimg.uri()).replace(qimgSocket.toString(), "SOCKET");
            assertThat(actual).isEqualTo(expected).contains("\"is_read_only\": false", "\"can_zero\": true");
        }
    }
}
