package org.qimg.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.qimg.ImageException;

/** Snapshot table entries built here as qcow2.txt lays them out. */
class SnapshotTableTest {

    /** Writes one entry at {@code at}; returns the offset of the next (padded to 8). */
    static int entry(ByteBuffer b, int at, String id, String name, int extraLength) {
        byte[] idBytes = id.getBytes(StandardCharsets.UTF_8);
        byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
        b.putLong(at, 0x50000).putInt(at + 8, 1).putShort(at + 12, (short) idBytes.length)
                .putShort(at + 14, (short) nameBytes.length).putInt(at + 16, 1_700_000_000).putInt(at + 20, 123_000)
                .putLong(at + 24, 3_723_456_000_000L).putInt(at + 32, 77).putInt(at + 36, extraLength);
        int extra = at + 40;
        if (extraLength >= 8) {
            b.putLong(extra, 1L << 33);
        }
        if (extraLength >= 16) {
            b.putLong(extra + 8, 1L << 30);
        }
        if (extraLength >= 24) {
            b.putLong(extra + 16, 42);
        }
        b.put(extra + extraLength, idBytes).put(extra + extraLength + idBytes.length, nameBytes);
        return (extra + extraLength + idBytes.length + nameBytes.length + 7) & ~7;
    }

    @Test
    void decodesEntriesWithAndWithoutExtraData() throws ImageException {
        ByteBuffer b = ByteBuffer.allocate(4096);
        int next = entry(b, 0, "1", "first", 24);
        entry(b, next, "2", "v2-style", 0);
        List<Snapshot> snapshots = SnapshotTable.parse(b, 2, 0x40000, "t.qcow2");
        assertThat(snapshots).hasSize(2);
        Snapshot first = snapshots.get(0);
        assertThat(first.id()).isEqualTo("1");
        assertThat(first.name()).isEqualTo("first");
        assertThat(first.l1TableOffset()).isEqualTo(0x50000);
        assertThat(first.dateSeconds()).isEqualTo(1_700_000_000L);
        assertThat(first.dateNanos()).isEqualTo(123_000);
        assertThat(first.vmClockNanos()).isEqualTo(3_723_456_000_000L);
        assertThat(first.vmStateSize()).isEqualTo(1L << 33);
        assertThat(first.diskSize()).isEqualTo(1L << 30);
        assertThat(first.icount()).isEqualTo(42);
        Snapshot second = snapshots.get(1);
        assertThat(second.name()).isEqualTo("v2-style");
        assertThat(second.vmStateSize()).isEqualTo(77);
        assertThat(second.diskSize()).isEqualTo(-1);
        assertThat(second.icount()).isEqualTo(-1);
    }

    @Test
    void refusesEntriesPastTheEnd() {
        ByteBuffer b = ByteBuffer.allocate(64);
        entry(b, 0, "1", "x", 16);
        assertThatThrownBy(() -> SnapshotTable.parse(b.limit(50), 1, 0x40000, "t.qcow2"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessage("t.qcow2: snapshot 0 at 0x40000 runs past the end of the file");
        assertThatThrownBy(() -> SnapshotTable.parse(ByteBuffer.allocate(100), 3, 0, "t.qcow2"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessage("t.qcow2: snapshot 2 at 0x50 runs past the end of the file");
    }

    @Test
    void refusesTooMuchExtraData() {
        ByteBuffer b = ByteBuffer.allocate(4096);
        entry(b, 0, "1", "x", 0);
        b.putInt(36, 2000);
        assertThatThrownBy(() -> SnapshotTable.parse(b, 1, 0x40000, "t.qcow2"))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("extra data size 2000 exceeds 1024");
    }
}
