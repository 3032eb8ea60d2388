package org.qimg.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qimg.nbd.testing.NbdUris;
import org.qimg.nbd.testing.QemuNbd;
import org.qimg.nbd.testing.QimgNbd;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Tools;

/**
 * qimg's server against qemu-nbd 7.2 serving the same corpus image the same way
 * ({@code qemu-nbd -r -t -e 0 -A}): what nbdinfo sees (export, flags, block sizes, contexts), both
 * maps, the bytes nbdcopy copies and what qemu-img compare (QEMU's own NBD client) concludes.
 */
class QemuParityTest {
    @TempDir
    static Path tmp;

    /** What nbdinfo reports about one server, the socket path replaced by "SOCKET". */
    private record Probe(String json, String map, String depthMap) {
    }

    private static Probe probe(String uri, Path socket) {
        String json = Tools.run("nbdinfo", "--json", uri).replace(socket.toString(), "SOCKET");
        String map = Tools.run("nbdinfo", "--map", uri);
        String depth = Tools.run("nbdinfo", "--map=qemu:allocation-depth", uri);
        return new Probe(json, map, depth);
    }

    @ParameterizedTest
    @ValueSource(strings = {"v3-64k-mixed", "v2-64k", "v3-512b", "v3-2m", "ext-64k", "ext-16k", "ext-over-backing",
            "compressed-zlib", "compressed-zstd", "compressed-ext", "short-backing", "long-backing", "chain-3",
            "mid-short", "chain-mixed", "relative-backing", "raw", "raw-odd", "raw-odd-backing", "prealloc-metadata",
            "prealloc-falloc", "data-file", "snapshots", "odd-size", "sparse-1t", "empty"})
    void servesWhatQemuNbdServes(String name) throws IOException {
        CorpusImage image = Corpus.get().image(name);
        Path qemuSocket = tmp.resolve(name + ".q.sock");
        Path qimgSocket = tmp.resolve(name + ".j.sock");
        Probe expected;
        try (QemuNbd qemu = QemuNbd.start(image.path(), image.format(), qemuSocket, true, null)) {
            expected = probe(qemu.uri(), qemuSocket);
        }
        try (QimgNbd qimg = QimgNbd.start(image, qimgSocket, true, null)) {
            Probe actual = probe(qimg.uri(), qimgSocket);
            assertThat(actual.json()).as("nbdinfo --json").isEqualTo(expected.json());
            assertThat(actual.map()).as("nbdinfo --map").isEqualTo(expected.map());
            assertThat(actual.depthMap()).as("nbdinfo --map=qemu:allocation-depth").isEqualTo(expected.depthMap());

            if (!name.equals("sparse-1t")) {
                Path copied = tmp.resolve(name + ".nbdcopy.raw");
                Tools.run("nbdcopy", qimg.uri(), copied.toString());
                byte[] reference = Corpus.qemuRawContent(image, tmp);
                assertThat(Files.readAllBytes(copied)).as("nbdcopy output").isEqualTo(reference);
                Files.delete(copied);
            }
            Tools.Result compare = Tools.exec(null, List.of("qemu-img", "compare", "-f", "raw", "-F", image.format(),
                    qimg.uri(), image.path().toString()));
            assertThat(compare.exitCode()).as("qemu-img compare: " + compare.stdout() + compare.stderr()).isZero();
        }
    }

    @Test
    void namedExportWithDescriptionWithoutAllocationDepth() throws IOException {
        CorpusImage image = Corpus.get().image("chain-3");
        Path qemuSocket = tmp.resolve("named.q.sock");
        Path qimgSocket = tmp.resolve("named.j.sock");
        String expectedInfo;
        String expectedList;
        try (QemuNbd qemu = QemuNbd.start(image.path(), image.format(), qemuSocket, false, "disk0",
                "a test disk")) {
            expectedInfo = Tools.run("nbdinfo", "--json", NbdUris.unix(qemuSocket, "disk0"))
                    .replace(qemuSocket.toString(), "SOCKET");
            expectedList = Tools.run("nbdinfo", "--list", "--json", NbdUris.unix(qemuSocket))
                    .replace(qemuSocket.toString(), "SOCKET");
        }
        try (QimgNbd qimg = QimgNbd.start(image, qimgSocket, false, "disk0", "a test disk")) {
            assertThat(Tools.run("nbdinfo", "--json", NbdUris.unix(qimgSocket, "disk0"))
                    .replace(qimgSocket.toString(), "SOCKET")).isEqualTo(expectedInfo);
            assertThat(Tools.run("nbdinfo", "--list", "--json", NbdUris.unix(qimgSocket))
                    .replace(qimgSocket.toString(), "SOCKET")).isEqualTo(expectedList);
            Tools.Result wrongName = Tools.exec(null, List.of("nbdinfo", NbdUris.unix(qimgSocket, "disk1")));
            assertThat(wrongName.exitCode()).isNotZero();
            assertThat(wrongName.stderr()).contains("No such file or directory"); // libnbd's reading of NBD_REP_ERR_UNKNOWN
        }
    }
}
