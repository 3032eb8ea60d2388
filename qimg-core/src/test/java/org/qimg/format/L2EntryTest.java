package org.qimg.format;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

import org.junit.jupiter.api.Test;
import org.qimg.ImageException;

class L2EntryTest {
    private static final long HOST = 0x50000L;

    @Test
    void standardEntries() {
        assertThat(L2Entry.classify(0, false)).isEqualTo(SubclusterType.UNALLOCATED_PLAIN);
        assertThat(L2Entry.classify(L2Entry.COPIED | HOST, false)).isEqualTo(SubclusterType.NORMAL);
        assertThat(L2Entry.classify(HOST, false)).isEqualTo(SubclusterType.NORMAL); // shared with a snapshot
        assertThat(L2Entry.classify(1, false)).isEqualTo(SubclusterType.ZERO_PLAIN);
        assertThat(L2Entry.classify(HOST | 1, false)).isEqualTo(SubclusterType.ZERO_ALLOC);
        assertThat(L2Entry.classify(0x4000000000050000L, false)).isEqualTo(SubclusterType.COMPRESSED);
        // External data file: offset 0 with COPIED is a real cluster at the start of the data file.
        assertThat(L2Entry.classify(L2Entry.COPIED, true)).isEqualTo(SubclusterType.NORMAL);
        assertThat(L2Entry.classify(L2Entry.COPIED, false)).isEqualTo(SubclusterType.UNALLOCATED_PLAIN);
    }

    @Test
    void extendedEntries() throws ImageException {
        long entry = L2Entry.COPIED | HOST;
        long bitmap = 0x0000_0300_0000_0004L; // subcluster 2 allocated, 8 and 9 zero (qemu-io observation)
        assertThat(L2Entry.classifyExtended(entry, bitmap, 2, false)).isEqualTo(SubclusterType.NORMAL);
        assertThat(L2Entry.classifyExtended(entry, bitmap, 8, false)).isEqualTo(SubclusterType.ZERO_ALLOC);
        assertThat(L2Entry.classifyExtended(entry, bitmap, 0, false)).isEqualTo(SubclusterType.UNALLOCATED_ALLOC);
        assertThat(L2Entry.classifyExtended(0, 1L << 32, 0, false)).isEqualTo(SubclusterType.ZERO_PLAIN);
        assertThat(L2Entry.classifyExtended(0, 1L << 32, 1, false)).isEqualTo(SubclusterType.UNALLOCATED_PLAIN);
        assertThatThrownBy(() -> L2Entry.classifyExtended(entry, 0x1_0000_0001L, 5, false))
                .isInstanceOf(ImageException.Corrupt.class);
        assertThatThrownBy(() -> L2Entry.classifyExtended(0, 1, 5, false)).isInstanceOf(ImageException.Corrupt.class);
    }

    @Test
    void runsOfSubclusters() {
        long bitmap = 0x0000_0300_0000_0004L;
        assertThat(L2Entry.sameTypeRun(bitmap, 0)).isEqualTo(2);
        assertThat(L2Entry.sameTypeRun(bitmap, 2)).isEqualTo(1);
        assertThat(L2Entry.sameTypeRun(bitmap, 3)).isEqualTo(5);
        assertThat(L2Entry.sameTypeRun(bitmap, 8)).isEqualTo(2);
        assertThat(L2Entry.sameTypeRun(bitmap, 10)).isEqualTo(22);
        assertThat(L2Entry.sameTypeRun(-1L >>> 32, 0)).isEqualTo(32);
        assertThat(L2Entry.sameTypeRun(0, 31)).isEqualTo(1);
    }

    @Property
    void runMatchesSubclusterBySubcluster(@ForAll int alloc, @ForAll int zeroBits, @ForAll @IntRange(max = 31) int index)
            throws ImageException {
        int zero = zeroBits & ~alloc; // a valid bitmap never has both bits
        long bitmap = ((long) zero << 32) | (alloc & 0xFFFF_FFFFL);
        long entry = L2Entry.COPIED | HOST;
        SubclusterType first = L2Entry.classifyExtended(entry, bitmap, index, false);
        int expected = 0;
        while (index + expected < 32 && L2Entry.classifyExtended(entry, bitmap, index + expected, false) == first) {
            expected++;
        }
        assertThat(L2Entry.sameTypeRun(bitmap, index)).isEqualTo(expected);
    }

    @Test
    void compressedDescriptor() {
        // 64 KiB clusters: offset in bits 0..53, additional sectors in bits 54..61.
        long entry = L2Entry.COMPRESSED_FLAG | (3L << 54) | 0x50123L;
        assertThat(L2Entry.compressedHostOffset(entry, 16)).isEqualTo(0x50123L);
        assertThat(L2Entry.compressedLength(entry, 16)).isEqualTo(4 * 512 - 0x123);
        // 2 MiB clusters: the count starts at bit 49.
        long big = L2Entry.COMPRESSED_FLAG | (5L << 49) | 0x200L;
        assertThat(L2Entry.compressedHostOffset(big, 21)).isEqualTo(0x200L);
        assertThat(L2Entry.compressedLength(big, 21)).isEqualTo(6 * 512);
    }
}
