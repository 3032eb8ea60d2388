package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.nbd.testing.NbdTestClient;
import org.qimg.nbd.testing.NbdUris;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Tools;

/** {@code qimg serve} as a command: TCP on the loopback, arguments, and shutdown on SIGTERM. */
class ServeCommandTest {
    @TempDir
    Path tmp;

    private static int freeLoopbackPort() throws IOException {
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return probe.getLocalPort();
        }
    }

    private static NbdTestClient connectWithRetry(InetSocketAddress address) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            try {
                return NbdTestClient.connect(address);
            } catch (IOException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(20);
            }
        }
    }

    @Test
    void servesOverTcpOnTheLoopbackAndEndsWithItsLastClient() throws Exception {
        CorpusImage image = Corpus.get().image("chain-3");
        int port = freeLoopbackPort();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        AtomicInteger exit = new AtomicInteger(-1);
        Thread serve = Thread.ofVirtual().start(() -> exit.set(Main.run(new String[] {"serve", "-r", "-p",
                String.valueOf(port), "-e", "2", "-A", "-x", "tcpdisk", "-f", "qcow2", image.path().toString()},
                new PrintWriter(out), new PrintWriter(err))));
        try {
            InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
            try (NbdTestClient first = connectWithRetry(address)) {
                String uri = "nbd://127.0.0.1:" + port + "/tcpdisk";
                String json = Tools.run("nbdinfo", "--json", uri);
                assertThat(json).contains("\"export-name\": \"tcpdisk\"", "\"export-size\": 6291456",
                        "\"qemu:allocation-depth\"", "\"can_multi_conn\": true", "\"is_read_only\": true");
                Tools.Result compare = Tools.exec(null, List.of("qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                        uri, image.path().toString()));
                assertThat(compare.exitCode()).as(compare.stdout() + compare.stderr()).isZero();
                first.go("tcpdisk", true);
                assertThat(first.read(0, 4096)).hasSize(4096);
                first.disconnect();
            }
            serve.join(Duration.ofSeconds(15));
            assertThat(serve.isAlive()).as("serve ends when its last client leaves (no -t)").isFalse();
            assertThat(exit.get()).as(err.toString()).isZero();
        } finally {
            if (serve.isAlive()) {
                // not persistent: one more client that leaves at once ends it
                try (NbdTestClient c = NbdTestClient.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(),
                        port))) {
                    c.greet(1);
                } catch (IOException ignored) {
                    // it ended meanwhile
                }
                serve.join(Duration.ofSeconds(5));
            }
        }
    }

    @Test
    void refusesConflictingArguments() {
        StringWriter err = new StringWriter();
        int code = Main.run(new String[] {"serve", "-k", tmp.resolve("s").toString(), "-p", "10809", "x.qcow2"},
                new PrintWriter(new StringWriter()), new PrintWriter(err));
        assertThat(code).isEqualTo(1);
        assertThat(err.toString()).contains("-k cannot be used with -b or -p");

        err = new StringWriter();
        code = Main.run(new String[] {"serve", "-k", tmp.resolve("s").toString(), tmp.resolve("missing.qcow2").toString()},
                new PrintWriter(new StringWriter()), new PrintWriter(err));
        assertThat(code).isEqualTo(1);
        assertThat(err.toString()).startsWith("qimg: ").contains("missing.qcow2");
        assertThat(tmp.resolve("s")).doesNotExist();
    }

    /**
     * SIGTERM (Process.destroy) ends a persistent, writable server: a write acknowledged before it
     * is on disk afterwards (flush, close), connections are closed, the socket file is removed.
     */
    @Test
    void sigtermShutsDownCleanly() throws Exception {
        CorpusImage image = Corpus.get().image("v3-64k-mixed");
        Path copy = tmp.resolve("served.qcow2");
        Files.copy(image.path(), copy);
        Path socket = tmp.resolve("term.sock");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "serve", "-t", "-e", "0", "-k",
                socket.toString(), "-f", "qcow2", copy.toString()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(tmp.resolve("serve.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!Files.exists(socket) && process.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(socket).as(Files.readString(tmp.resolve("serve.log"))).exists();
            try (NbdTestClient client = NbdTestClient.connect(socket)) {
                client.go("", true);
                byte[] data = new byte[65536];
                Arrays.fill(data, (byte) 0x77);
                client.expectOk(client.request(0, NbdTestClient.CMD_WRITE, 4 << 20, data.length, data));
                assertThat(Tools.run("nbdinfo", "--size", NbdUris.unix(socket)).strip()).isEqualTo("8388608");
                process.destroy();
                assertThat(process.waitFor(15, TimeUnit.SECONDS)).as("exits on SIGTERM").isTrue();
                assertThat(client.closedByServer()).isTrue();
            }
            assertThat(socket).as("socket file removed").doesNotExist();
            assertThat(Files.readString(tmp.resolve("serve.log"))).doesNotContain("Exception");
            Tools.run("qemu-img", "check", copy.toString());
            String read = Tools.run("qemu-io", "-f", "qcow2", "-c", "read -P 0x77 4M 64k", copy.toString());
            assertThat(read).doesNotContain("Pattern verification failed");
        } finally {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
        }
    }
}
