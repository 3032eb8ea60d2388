package org.qimg.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.qimg.nbd.testing.NbdTestClient.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.nbd.testing.MemoryDevice;
import org.qimg.nbd.testing.NbdTestClient;
import org.qimg.nbd.testing.NbdTestClient.ExportInfo;
import org.qimg.nbd.testing.NbdUris;
import org.qimg.nbd.testing.QimgNbd;
import org.qimg.testing.Tools;

/**
 * The write commands, against a writable in-memory device (the qcow2 engine cannot write yet):
 * what is advertised, what reaches {@code BlockDevice.write/writeZeroes/discard/flush}, and the
 * errors; nbdcopy then writes a whole image through the server.
 */
class WritePathTest {
    private static final int SIZE = 4 << 20;

    @TempDir
    Path tmp;
    private QimgNbd server;
    private MemoryDevice device;

    private NbdTestClient start(boolean readOnly) throws IOException {
        device = new MemoryDevice(SIZE);
        server = QimgNbd.start(Export.of(device).withReadOnly(readOnly), tmp.resolve("s"),
                NbdServer.Settings.defaults().withPersistent(true).withMaxClients(0));
        return NbdTestClient.connect(server.socket());
    }

    @AfterEach
    void stop() throws IOException {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void writableExportAdvertisesWriteCommands() throws IOException {
        try (NbdTestClient c = start(false)) {
            ExportInfo info = c.go("", true);
            int flags = info.flags();
            assertThat(flags & 0x02).as("READ_ONLY").isZero();
            assertThat(flags & (0x04 | 0x08 | 0x20 | 0x40 | 0x800))
                    .as("FLUSH, FUA, TRIM, WRITE_ZEROES, FAST_ZERO").isEqualTo(0x04 | 0x08 | 0x20 | 0x40 | 0x800);
            assertThat(flags & 0x100).as("no MULTI_CONN unless asked for").isZero();
        }
    }

    @Test
    void writesReachTheDevice() throws IOException {
        try (NbdTestClient c = start(false)) {
            c.go("", true);
            byte[] data = new byte[65536];
            new Random(3).nextBytes(data);
            c.expectOk(c.request(0, CMD_WRITE, 4096, data.length, data));
            c.expectOk(c.request(FLAG_FUA, CMD_WRITE, 1 << 20, 512, Arrays.copyOf(data, 512)));
            assertThat(device.calls()).containsExactly("write 4096 65536", "write 1048576 512", "flush");
            assertThat(c.read(4096, data.length)).isEqualTo(data);

            c.expectOk(c.request(0, CMD_WRITE_ZEROES, 8192, 4096, null));
            c.expectOk(c.request(FLAG_NO_HOLE | FLAG_FUA, CMD_WRITE_ZEROES, 16384, 4096, null));
            c.expectOk(c.request(0, CMD_TRIM, 32768, 4096, null));
            c.expectOk(c.request(0, CMD_FLUSH, 0, 0, null));
            assertThat(device.calls()).endsWith("zeroes 8192 4096 unmap", "zeroes 16384 4096", "flush",
                    "discard 32768 4096", "flush");
            byte[] expected = data.clone();
            Arrays.fill(expected, 8192 - 4096, 8192, (byte) 0);
            Arrays.fill(expected, 16384 - 4096, 16384, (byte) 0);
            Arrays.fill(expected, 32768 - 4096, 32768, (byte) 0);
            assertThat(c.read(4096, data.length)).isEqualTo(expected);
        }
    }

    @Test
    void writeErrors() throws IOException {
        try (NbdTestClient c = start(false)) {
            c.go("", true);
            assertThat(c.errorOf(c.request(0, CMD_WRITE, SIZE - 256, 512, new byte[512]), 0)).isEqualTo(ENOSPC);
            assertThat(c.errorOf(c.request(0, CMD_WRITE_ZEROES, SIZE, 1, null), 0)).isEqualTo(ENOSPC);
            assertThat(c.errorOf(c.request(0, CMD_TRIM, SIZE - 1, 2, null), 0)).isEqualTo(EINVAL);
            // "the server SHOULD fail a fast zero request with NBD_ENOTSUP if [it] cannot quickly
            // determine in advance whether proceeding with the request would be fast"
            device.fill(new byte[] {1, 2, 3});
            assertThat(c.errorOf(c.request(FLAG_FAST_ZERO, CMD_WRITE_ZEROES, 0, 4096, null), 0)).isEqualTo(ENOTSUP);
            assertThat(c.read(0, 3)).containsExactly(1, 2, 3);
            assertThat(c.errorOf(c.request(FLAG_DF, CMD_WRITE, 0, 512, new byte[512]), 0)).isEqualTo(EINVAL);
            assertThat(device.calls()).isEmpty();
        }
    }

    @Test
    void readOnlyExportOfAWritableDevice() throws IOException {
        try (NbdTestClient c = start(true)) {
            ExportInfo info = c.go("", true);
            assertThat(info.flags() & 0x02).as("READ_ONLY").isNotZero();
            assertThat(info.flags() & (0x20 | 0x40 | 0x800)).isZero();
            assertThat(c.errorOf(c.request(0, CMD_WRITE, 0, 512, new byte[512]), 0)).isEqualTo(EPERM);
            assertThat(c.errorOf(c.request(0, CMD_WRITE_ZEROES, 0, 512, null), 0)).isEqualTo(EPERM);
            assertThat(c.errorOf(c.request(0, CMD_TRIM, 0, 512, null), 0)).isEqualTo(EPERM);
            assertThat(device.calls()).isEmpty();
        }
    }

    @Test
    void nbdcopyWritesAnImageThroughTheServer() throws IOException {
        try (NbdTestClient ignored = start(false)) {
            byte[] content = new byte[SIZE];
            Random random = new Random(5);
            for (int block = 0; block < SIZE / 65536; block++) {
                if (block % 3 != 0) {
                    byte[] chunk = new byte[65536];
                    random.nextBytes(chunk);
                    System.arraycopy(chunk, 0, content, block * 65536, chunk.length);
                }
            }
            device.fill(new byte[SIZE]);
            Arrays.fill(content, 0, 10, (byte) 7);
            Path source = tmp.resolve("source.raw");
            Files.write(source, content);
            Tools.run("nbdcopy", source.toString(), NbdUris.unix(server.socket()));
            assertThat(device.content()).isEqualTo(content);
            assertThat(device.calls()).anyMatch(call -> call.startsWith("write "))
                    .anyMatch(call -> call.startsWith("zeroes ")); // nbdcopy zeroes the holes
        }
    }
}
