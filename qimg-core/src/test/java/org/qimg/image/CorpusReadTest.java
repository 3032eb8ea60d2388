package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.BlockDevice;
import org.qimg.Extent;
import org.qimg.host.HostFile;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Tools;

/**
 * Every byte qimg reads equals what qemu-img convert writes for the same image, and every range qimg
 * calls a hole holds only zeroes there.
 */
class CorpusReadTest {
    @TempDir
    Path scratch;

    static Stream<CorpusImage> images() {
        return Corpus.get().images().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("images")
    void readsWhatQemuReads(CorpusImage image) throws IOException {
        Path expected = scratch.resolve("expected.raw");
        Tools.run("qemu-img", "convert", "-f", image.format(), "-O", "raw", image.path().toString(),
                expected.toString());
        try (BlockDevice device = image.open();
             FileChannel qemu = FileChannel.open(expected, StandardOpenOption.READ);
             HostFile qemuHost = HostFile.openReadOnly(expected, expected.toString())) {
            assertThat(qemu.size()).isEqualTo(device.size());
            BlockDevice.ExtentStream extents = device.map(0, device.size());
            for (Extent e = extents.next(); e != null; e = extents.next()) {
                if (e.zero()) {
                    assertHoleIsZero(qemuHost, qemu, e);
                    // Reading a hole through the engine gives zeroes too (a sample of it).
                    ByteBuffer ours = ByteBuffer.allocate((int) Math.min(e.length(), 1 << 20));
                    device.read(e.start(), ours);
                    assertThat(isZero(ours.flip())).as("hole %s reads as zero", e).isTrue();
                    continue;
                }
                for (long at = e.start(); at < e.end(); at += 1 << 22) {
                    int n = (int) Math.min(1 << 22, e.end() - at);
                    ByteBuffer ours = ByteBuffer.allocate(n);
                    device.read(at, ours);
                    ByteBuffer theirs = ByteBuffer.allocate(n);
                    qemu.read(theirs, at);
                    assertThat(ours.flip()).as("data at %d (%s)", at, e).isEqualTo(theirs.flip());
                }
            }
        }
        Files.delete(expected);
    }

    /** The range is zero in qemu's output: either a host hole there, or bytes that are zero. */
    private static void assertHoleIsZero(HostFile host, FileChannel qemu, Extent e) throws IOException {
        long at = e.start();
        while (at < e.end()) {
            long data = host.seekData(at);
            if (data < 0 || data >= e.end()) {
                return;
            }
            long hole = Math.min(e.end(), host.seekHole(data));
            for (long from = data; from < hole; from += 1 << 22) {
                ByteBuffer theirs = ByteBuffer.allocate((int) Math.min(1 << 22, hole - from));
                qemu.read(theirs, from);
                assertThat(isZero(theirs.flip())).as("qemu reads zeroes in hole %s at %d", e, from).isTrue();
            }
            at = hole;
        }
    }

    static boolean isZero(ByteBuffer b) {
        while (b.remaining() >= 8) {
            if (b.getLong() != 0) {
                return false;
            }
        }
        while (b.hasRemaining()) {
            if (b.get() != 0) {
                return false;
            }
        }
        return true;
    }
}
