package org.qimg.host;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Space reserved ahead of appending writes: the writes read back as written, the file's size is only
 * what was written, and close leaves no reserved block past the end. And the system calls' error
 * numbers, which the one downcall handle captures.
 */
class HostFileTest {
    private static final int MIB = 1 << 20;
    /**
     * Bytes the file system may keep for itself beside the data: once write-behind has split the
     * reserved extents, ext4 may keep an extent-tree block (24 MiB + 4 KiB, about one run in six).
     */
    private static final long FS_OWN = 64 * 1024;

    @TempDir
    Path dir;

    @Test
    void appendingWritesReserveAheadAndCloseReleasesWhatIsLeft() throws IOException {
        Path path = Files.createFile(dir.resolve("appended"));
        try (HostFile file = HostFile.openReadWrite(path, "appended")) {
            for (int i = 0; i < 24; i++) {
                file.write((long) i * MIB, filled(MIB, i + 1));
            }
            assertThat(file.size()).isEqualTo(24L * MIB);
            // Reserved past the end: at least the next write's worth (ext4, xfs and tmpfs have fallocate).
            assertThat(file.allocatedBytes()).isGreaterThanOrEqualTo(25L * MIB);
        }
        assertThat(Files.size(path)).isEqualTo(24L * MIB);
        // The data's blocks, and at most a few of the file system's own (FS_OWN). A reservation left
        // behind would be 4 MiB or more.
        assertThat(allocated(path)).isBetween(24L * MIB, 24L * MIB + FS_OWN);
        byte[] bytes = Files.readAllBytes(path);
        for (int i = 0; i < 24; i++) {
            byte[] expected = new byte[MIB];
            Arrays.fill(expected, (byte) (i + 1));
            assertThat(Arrays.copyOfRange(bytes, i * MIB, (i + 1) * MIB)).as("MiB %d", i).isEqualTo(expected);
        }
    }

    /** The system calls report their error numbers: ENXIO past the last data, ENOENT for a missing file. */
    @Test
    void systemCallsReportTheirErrorNumbers() throws IOException {
        Path path = Files.createFile(dir.resolve("sparse"));
        try (HostFile file = HostFile.openReadWrite(path, "sparse")) {
            file.write(0, filled(4096, 1));
            file.setLength(MIB);
            assertThat(file.seekData(0)).isZero();
            assertThat(file.seekHole(0)).isEqualTo(4096);
            assertThat(file.seekData(8192)).as("ENXIO: no data after a trailing hole").isEqualTo(-1);
        }
        assertThatThrownBy(() -> Native.open(dir.resolve("missing").toString(), false))
                .isInstanceOf(IOException.class).hasMessageEndingWith("errno 2");
    }

    @Test
    void smallOrInnerWritesReserveNothing() throws IOException {
        Path path = Files.createFile(dir.resolve("small"));
        try (HostFile file = HostFile.openReadWrite(path, "small")) {
            for (int i = 0; i < 64; i++) {
                file.write(i * 8192L, filled(4096, 9)); // sparse 4 KiB writes at the end
            }
            file.setLength(8 * MIB);
            file.write(2 * MIB, filled(MIB, 3)); // a large write inside the file
            assertThat(file.allocatedBytes()).isLessThanOrEqualTo(64 * 4096L + MIB);
        }
        assertThat(allocated(path)).isLessThanOrEqualTo(64 * 4096L + MIB);
    }

    @Test
    void shrinkingDropsTheReservationAndLaterAppendsReserveAgain() throws IOException {
        Path path = Files.createFile(dir.resolve("shrunk"));
        try (HostFile file = HostFile.openReadWrite(path, "shrunk")) {
            for (int i = 0; i < 8; i++) {
                file.write((long) i * MIB, filled(MIB, 5));
            }
            file.setLength(MIB);
            assertThat(file.allocatedBytes()).isBetween((long) MIB, MIB + FS_OWN);
            file.write(MIB, filled(2 * MIB, 6));
            assertThat(file.allocatedBytes()).isGreaterThan(3L * MIB);
        }
        assertThat(Files.size(path)).isEqualTo(3L * MIB);
        assertThat(allocated(path)).isBetween(3L * MIB, 3L * MIB + FS_OWN);
    }

    private static ByteBuffer filled(int length, int value) {
        byte[] bytes = new byte[length];
        Arrays.fill(bytes, (byte) value);
        return ByteBuffer.wrap(bytes);
    }

    private static long allocated(Path path) throws IOException {
        try (HostFile file = HostFile.openReadOnly(path, path.toString())) {
            return file.allocatedBytes();
        }
    }
}
