package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/** Damaged and hostile images get an ImageException naming the fault: never a hang, a crash or OOM. */
class BadInputTest {
    @TempDir
    Path dir;
    Path image;

    @BeforeEach
    void makeImage() {
        image = dir.resolve("img.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "16M");
        Corpus.io(image, "write -P 0x5a 0 64k", "write -P 0x5b 8M 64k");
    }

    private void patchInt(long offset, int value) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(offset);
            f.writeInt(value);
        }
    }

    private void patchLong(long offset, long value) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(offset);
            f.writeLong(value);
        }
    }

    private long readLong(long offset) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.seek(offset);
            return f.readLong();
        }
    }

    /** Opening (and mapping, which walks every table) fails with a message containing {@code words}. */
    private void assertRefused(Class<? extends ImageException> type, String words) {
        assertThatThrownBy(() -> {
            try (BlockDevice d = Images.open(image.toString())) {
                BlockDevice.ExtentStream s = d.map(0, d.size());
                while (s.next() != null) {
                    // walk it all
                }
            }
        }).isInstanceOf(type).hasMessageContaining(words).satisfies(e -> org.assertj.core.api.Assertions
                .assertThat(e.getMessage()).doesNotContain("\n"));
    }

    @Test
    void truncatedHeader() throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(50);
        }
        assertThatThrownBy(() -> Images.open(image.toString(), org.qimg.OpenOptions.defaults().withFormat("qcow2")))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("too short");
    }

    @Test
    void truncatedTables() throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(0x30000 - 4096); // cuts into the refcount/L1 area qemu-img lays out first
        }
        assertRefused(ImageException.Corrupt.class, "past the end of the file");
    }

    @Test
    void wrongMagicWithFormatGiven() throws IOException {
        patchInt(0, 0x12345678);
        assertThatThrownBy(() -> Images.open(image.toString(), org.qimg.OpenOptions.defaults().withFormat("qcow2")))
                .isInstanceOf(ImageException.class).hasMessageContaining("not in qcow2 format");
    }

    @Test
    void unsupportedVersion() throws IOException {
        patchInt(4, 4);
        assertRefused(ImageException.Unsupported.class, "version 4");
    }

    @Test
    void clusterBitsOutOfRange() throws IOException {
        patchInt(20, 8);
        assertRefused(ImageException.Corrupt.class, "cluster_bits 8");
        patchInt(20, 22);
        assertRefused(ImageException.Corrupt.class, "cluster_bits 22");
        patchInt(20, -1);
        assertRefused(ImageException.Corrupt.class, "cluster_bits");
    }

    @Test
    void l1SizeOutOfRange() throws IOException {
        patchInt(36, 0x7FFFFFFF);
        assertRefused(ImageException.Corrupt.class, "32 MiB");
        patchInt(36, 0);
        assertRefused(ImageException.Corrupt.class, "too small");
    }

    @Test
    void hugeVirtualSizeNeedsAHugeL1() throws IOException {
        patchLong(24, Long.MAX_VALUE);
        assertRefused(ImageException.Corrupt.class, "l1_size");
    }

    @Test
    void l1TablePastEndOfFile() throws IOException {
        patchLong(40, 1L << 40);
        assertRefused(ImageException.Corrupt.class, "L1 table at 0x10000000000");
    }

    @Test
    void l1TableMisaligned() throws IOException {
        patchLong(40, readLong(40) + 512);
        assertRefused(ImageException.Corrupt.class, "L1 table offset");
    }

    @Test
    void l2TablePastEndOfFile() throws IOException {
        long l1 = readLong(40);
        patchLong(l1, (1L << 63) | (1L << 40));
        assertRefused(ImageException.Corrupt.class, "L2 table at 0x10000000000");
    }

    @Test
    void l2TableMisaligned() throws IOException {
        long l1 = readLong(40);
        patchLong(l1, readLong(l1) + 512);
        assertRefused(ImageException.Corrupt.class, "not aligned");
    }

    @Test
    void dataClusterMisaligned() throws IOException {
        long l2 = readLong(readLong(40)) & 0x00FF_FFFF_FFFF_FE00L;
        patchLong(l2, readLong(l2) + 512);
        assertRefused(ImageException.Corrupt.class, "unaligned");
    }

    @Test
    void backingChainThatLoops() throws IOException {
        Path a = dir.resolve("a.qcow2");
        Path b = dir.resolve("b.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", a.toString(), "1M");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", a.toString(), "-F", "qcow2", b.toString(), "1M");
        Tools.run("qemu-img", "rebase", "-u", "-b", b.toString(), "-F", "qcow2", a.toString());
        assertThatThrownBy(() -> Images.open(b.toString())).isInstanceOf(ImageException.class).hasMessageContaining("loops");
        Tools.run("qemu-img", "rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", a.toString());
        assertThatThrownBy(() -> Images.open(a.toString())).isInstanceOf(ImageException.class).hasMessageContaining("loops");
    }

    @Test
    void missingBackingFile() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Path top = dir.resolve("top.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "1M");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString(), "1M");
        Files.delete(base);
        assertThatThrownBy(() -> Images.open(top.toString())).isInstanceOf(ImageException.class)
                .hasMessageContaining("Could not open backing file").hasMessageContaining("base.qcow2");
    }

    @Test
    void missingImage() {
        assertThatThrownBy(() -> Images.open(dir.resolve("nope.qcow2").toString()))
                .isInstanceOf(ImageException.class).hasMessageContaining("No such file");
    }

    @Test
    void encryptedImagesAreNotSupported() throws IOException {
        // Legacy AES made by qemu-img (LUKS creation times its key derivation and is flaky on a busy
        // machine); LUKS by its crypt_method value.
        Path enc = dir.resolve("enc.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=abc", "-o",
                "encrypt.format=aes,encrypt.key-secret=sec0", enc.toString(), "1M");
        assertThatThrownBy(() -> Images.open(enc.toString())).isInstanceOf(ImageException.Unsupported.class)
                .hasMessageContaining("encrypted").hasMessageContaining("AES");
        patchInt(32, 2);
        assertRefused(ImageException.Unsupported.class, "LUKS");
    }

    @Test
    void unknownIncompatibleFeature() throws IOException {
        patchLong(72, 1L << 40);
        assertRefused(ImageException.Unsupported.class, "incompatible feature");
    }

    @Test
    void corruptSubclusterBitmap() throws IOException {
        Path ext = dir.resolve("ext.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", ext.toString(), "1M");
        Corpus.io(ext, "write -P 1 0 4k");
        image = ext;
        long l2 = readLong(readLong(40)) & 0x00FF_FFFF_FFFF_FE00L;
        patchLong(l2 + 8, 0x0000_0001_0000_0001L); // subcluster 0 both allocated and zero
        assertRefused(ImageException.Corrupt.class, "both allocated and zero");
    }

    @Test
    void garbageCompressedCluster() throws IOException {
        Path src = dir.resolve("src.raw");
        Files.write(src, new byte[65536 * 2]);
        try (RandomAccessFile f = new RandomAccessFile(src.toFile(), "rw")) {
            f.seek(0);
            f.write(new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
        }
        Path c = dir.resolve("c.qcow2");
        Tools.run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", src.toString(), c.toString());
        image = c;
        long l2 = readLong(readLong(40)) & 0x00FF_FFFF_FFFF_FE00L;
        long host = readLong(l2) & ((1L << 54) - 1);
        try (RandomAccessFile f = new RandomAccessFile(c.toFile(), "rw")) {
            f.seek(host);
            f.write(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff});
        }
        try (BlockDevice d = Images.open(c.toString())) {
            assertThatThrownBy(() -> d.read(0, java.nio.ByteBuffer.allocate(512)))
                    .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("compressed cluster");
        }
    }
}
