package org.qimg.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.qimg.ImageException;

/** Bitmap directory entries built here as qcow2.txt lays them out. */
class BitmapDirectoryTest {

    static int entry(ByteBuffer b, int at, String name, int flags, int granularityBits, int extra) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        b.putLong(at, 0x70000).putInt(at + 8, 1).putInt(at + 12, flags).put(at + 16, (byte) 1)
                .put(at + 17, (byte) granularityBits).putShort(at + 18, (short) n.length).putInt(at + 20, extra);
        b.put(at + 24 + extra, n);
        return (at + 24 + extra + n.length + 7) & ~7;
    }

    @Test
    void decodesEntries() throws ImageException {
        ByteBuffer b = ByteBuffer.allocate(256);
        int next = entry(b, 0, "b0", Bitmap.FLAG_AUTO, 16, 0);
        int end = entry(b, next, "busy", Bitmap.FLAG_IN_USE, 17, 8);
        List<Bitmap> bitmaps = BitmapDirectory.parse(b.limit(end), 2, 0x60000, "t.qcow2");
        assertThat(bitmaps).extracting(Bitmap::name).containsExactly("b0", "busy");
        assertThat(bitmaps.get(0).auto()).isTrue();
        assertThat(bitmaps.get(0).inUse()).isFalse();
        assertThat(bitmaps.get(0).granularity()).isEqualTo(65536);
        assertThat(bitmaps.get(1).inUse()).isTrue();
        assertThat(bitmaps.get(1).granularity()).isEqualTo(131072);
        assertThat(bitmaps.get(1).tableOffset()).isEqualTo(0x70000);
    }

    @Test
    void refusesBadEntries() {
        ByteBuffer b = ByteBuffer.allocate(64);
        int end = entry(b, 0, "b0", 0, 16, 0);
        assertThatThrownBy(() -> BitmapDirectory.parse(b.duplicate().limit(end - 8), 1, 0x60000, "t.qcow2"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("runs past the end of the directory");
        b.put(17, (byte) 40);
        assertThatThrownBy(() -> BitmapDirectory.parse(b, 1, 0x60000, "t.qcow2"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("granularity_bits 40");
        assertThatThrownBy(() -> BitmapDirectory.parse(b, 0, 0x60000, "t.qcow2"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("bitmap count 0");
    }
}
