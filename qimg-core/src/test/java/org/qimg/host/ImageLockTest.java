package org.qimg.host;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.testing.Tools;

/** qimg and QEMU see each other's image locks, both ways. */
class ImageLockTest {
    @TempDir
    Path dir;

    @Test
    void aWriterKeepsQemuAwayAndQemuKeepsWritersAway() throws Exception {
        Path image = dir.resolve("l.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "1M");
        try (BlockDevice writer = Images.openWritable(image.toString())) {
            Tools.Result io = Tools.exec(null, List.of("qemu-io", "-c", "write 0 4k", image.toString()));
            assertThat(io.exitCode()).isNotZero();
            assertThat(io.stderr()).contains("Failed to get \"write\" lock");
            assertThat(Tools.exec(null, List.of("qemu-img", "map", image.toString())).exitCode()).isNotZero();
            // qemu-img's -U reads anyway, as qimg's forceShare does.
            assertThat(Tools.exec(null, List.of("qemu-img", "map", "-U", image.toString())).exitCode()).isZero();
        }
        try (BlockDevice reader = Images.open(image.toString())) {
            // Readers share with readers.
            assertThat(Tools.exec(null, List.of("qemu-img", "map", image.toString())).exitCode()).isZero();
            assertThat(Tools.exec(null, List.of("qemu-io", "-c", "write 0 4k", image.toString())).exitCode())
                    .isNotZero();
        }
        Process qemu = new ProcessBuilder("qemu-io", "-c", "sleep 3000", image.toString()).start();
        try {
            Thread.sleep(700);
            assertThatThrownBy(() -> Images.openWritable(image.toString())).isInstanceOf(ImageException.class)
                    .hasMessageContaining("lock");
            assertThatThrownBy(() -> Images.open(image.toString())).isInstanceOf(ImageException.class)
                    .hasMessageContaining("shared \"write\" lock");
            try (BlockDevice shared = Images.open(image.toString(), OpenOptions.defaults().withForceShare(true))) {
                assertThat(shared.size()).isEqualTo(1 << 20);
            }
        } finally {
            qemu.destroyForcibly().waitFor();
        }
    }
}
