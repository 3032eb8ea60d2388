package org.qimg.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;
import org.qimg.ImageException;

/** Header decoding from bytes built here, as QEMU 7.2 lays them out. */
class Qcow2HeaderTest {
    private static final long FILE_SIZE = 0x100000;

    /** A v3 header: 64 KiB clusters, 1 GiB, L1 at 0x30000, refcount table at 0x10000, with extensions. */
    static ByteBuffer v3() {
        ByteBuffer b = ByteBuffer.allocate(65536);
        b.putInt(0, Qcow2Header.MAGIC).putInt(4, 3).putInt(20, 16).putLong(24, 1L << 30);
        b.putInt(36, 2).putLong(40, 0x30000).putLong(48, 0x10000).putInt(56, 1);
        b.putInt(96, 4).putInt(100, 112);
        int at = 112;
        byte[] fmt = "qcow2".getBytes(StandardCharsets.US_ASCII);
        b.putInt(at, 0xE2792ACA).putInt(at + 4, fmt.length).put(at + 8, fmt);
        at += 16;
        b.putInt(at, 0).putInt(at + 4, 0);
        byte[] name = "base.qcow2".getBytes(StandardCharsets.US_ASCII);
        b.putLong(8, 528).putInt(16, name.length).put(528, name);
        return b;
    }

    @Test
    void decodesAV3Header() throws ImageException {
        Qcow2Header h = Qcow2Header.parse(v3(), FILE_SIZE, "t");
        assertThat(h.version()).isEqualTo(3);
        assertThat(h.clusterSize()).isEqualTo(65536);
        assertThat(h.virtualSize()).isEqualTo(1L << 30);
        assertThat(h.l2Bits()).isEqualTo(13);
        assertThat(h.backingFile()).isEqualTo("base.qcow2");
        assertThat(h.backingFormat()).isEqualTo("qcow2");
        assertThat(h.refcountBits()).isEqualTo(16);
        assertThat(h.extendedL2()).isFalse();
    }

    @Test
    void refusesFieldsOutOfRange() {
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putInt(100, 100), FILE_SIZE, "t"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("header_length 100");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putInt(96, 7), FILE_SIZE, "t"))
                .hasMessageContaining("refcount_order 7");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putLong(72, Qcow2Header.INCOMPAT_COMPRESSION), FILE_SIZE, "t"))
                .hasMessageContaining("compression type bit");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putLong(72, Qcow2Header.INCOMPAT_EXTENDED_L2).putInt(20, 12),
                FILE_SIZE, "t")).hasMessageContaining("extended L2");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putInt(16, 5000), FILE_SIZE, "t"))
                .hasMessageContaining("backing_file_size 5000");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putInt(56, 1 << 20), FILE_SIZE, "t"))
                .hasMessageContaining("8 MiB");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putLong(48, 0x10200), FILE_SIZE, "t"))
                .hasMessageContaining("refcount table offset");
        assertThatThrownBy(() -> Qcow2Header.parse(v3().putInt(116, 1 << 20), FILE_SIZE, "t"))
                .hasMessageContaining("runs past the first cluster");
    }
}
