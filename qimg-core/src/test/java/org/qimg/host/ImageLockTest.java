package org.qimg.host;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.BlockDevice;
import org.qimg.CreateOptions;
import org.qimg.CreateOptions.Preallocation;
import org.qimg.ImageException;
import org.qimg.Images;
import org.qimg.OpenOptions;
import org.qimg.image.Qcow2Creator;
import org.qimg.image.RawCreator;
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
        try (Tools.Holder qemu = Tools.holdOpen(image)) {
            assertThatThrownBy(() -> Images.openWritable(image.toString())).isInstanceOf(ImageException.class)
                    .hasMessageContaining("lock");
            assertThatThrownBy(() -> Images.open(image.toString())).isInstanceOf(ImageException.class)
                    .hasMessageContaining("shared \"write\" lock");
            try (BlockDevice shared = Images.open(image.toString(), OpenOptions.defaults().withForceShare(true))) {
                assertThat(shared.size()).isEqualTo(1 << 20);
            }
        }
    }

    /**
     * Creating an image over a file that another process uses is refused before the file is touched,
     * as qemu-img create refuses it: truncating the disk of a running VM would destroy it.
     */
    @Test
    void creatingOverAnImageInUseIsRefusedAndLeavesItAsItWas() throws Exception {
        Path image = dir.resolve("busy.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "1M");
        Tools.run("qemu-io", "-f", "qcow2", "-c", "write -q -P 7 0 64k", image.toString());
        byte[] before = Files.readAllBytes(image);
        try (Tools.Holder qemu = Tools.holdOpen(image)) {
            assertThatThrownBy(() -> Qcow2Creator.create(image, CreateOptions.ofSize(2 << 20)))
                    .isInstanceOf(ImageException.class).hasMessageContaining("Failed to get \"write\" lock");
            assertThatThrownBy(() -> RawCreator.create(image, 2 << 20, Preallocation.OFF))
                    .isInstanceOf(ImageException.class).hasMessageContaining("Failed to get \"write\" lock");
            assertThat(Files.readAllBytes(image)).isEqualTo(before);
        }
        // qimg's own users count too, a reader included (it forbids writes).
        try (BlockDevice reader = Images.open(image.toString())) {
            assertThatThrownBy(() -> Qcow2Creator.create(image, CreateOptions.ofSize(2 << 20)))
                    .isInstanceOf(ImageException.class).hasMessageContaining("lock");
        }
        assertThat(Files.readAllBytes(image)).isEqualTo(before);
        // Once nobody uses it, it is created over as before.
        Qcow2Creator.create(image, CreateOptions.ofSize(2 << 20));
        assertThat(Tools.run("qemu-img", "info", image.toString())).contains("virtual size: 2 MiB");
    }

    /**
     * The external data file is locked as QEMU locks it: others may write it, nobody may resize it while
     * the image is open.
     */
    @Test
    void theDataFileIsLockedAsQemuLocksIt() throws Exception {
        Path image = dir.resolve("ext.qcow2");
        Path data = dir.resolve("ext.data");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + data, image.toString(), "1M");
        try (BlockDevice writer = Images.openWritable(image.toString())) {
            Tools.Result resize = Tools.exec(null, List.of("qemu-img", "resize", "-f", "raw", data.toString(), "2M"));
            assertThat(resize.exitCode()).isNotZero();
            assertThat(resize.stderr()).contains("lock");
            // A raw writer may open it, as QEMU's may, but not resize it.
            try (BlockDevice rawWriter = Images.open(data.toString(), OpenOptions.defaults().withFormat("raw").writable())) {
                assertThatThrownBy(() -> rawWriter.resize(2 << 20)).isInstanceOf(ImageException.class)
                        .hasMessageContaining("\"resize\" lock");
            }
            // Writing is shared, as QEMU shares it.
            assertThat(Tools.exec(null, List.of("qemu-io", "-f", "raw", "-c", "write 0 4k", data.toString())).exitCode())
                    .isZero();
        }
        try (BlockDevice reader = Images.open(image.toString())) {
            assertThat(Tools.exec(null, List.of("qemu-img", "resize", "-f", "raw", data.toString(), "2M")).exitCode())
                    .isNotZero();
        }
        try (BlockDevice shared = Images.open(image.toString(), OpenOptions.defaults().withForceShare(true))) {
            assertThat(Tools.exec(null, List.of("qemu-img", "resize", "-f", "raw", data.toString(), "2M")).exitCode())
                    .isZero();
        }
    }

    /**
     * qimg holds the very lock bytes qemu-io holds, file by file: raw and qcow2 images read and
     * written, a qcow2 and a raw backing file, an external data file.
     */
    @Test
    void theLockBytesAreQemusOnEveryKindOfFile() throws Exception {
        Path raw = dir.resolve("b.raw");
        Path base = dir.resolve("b.qcow2");
        Path top = dir.resolve("t.qcow2");
        Path overRaw = dir.resolve("r.qcow2");
        Path ext = dir.resolve("e.qcow2");
        Path data = dir.resolve("e.data");
        Tools.run("qemu-img", "create", "-q", "-f", "raw", raw.toString(), "1M");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "1M");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-b", raw.toString(), "-F", "raw", overRaw.toString());
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + data, ext.toString(), "1M");
        record Case(Path image, String format, boolean write, List<Path> files) {
        }
        for (Case c : List.of(new Case(raw, "raw", false, List.of(raw)), new Case(raw, "raw", true, List.of(raw)),
                new Case(top, "qcow2", false, List.of(top, base)), new Case(top, "qcow2", true, List.of(top, base)),
                new Case(overRaw, "qcow2", true, List.of(overRaw, raw)),
                new Case(ext, "qcow2", false, List.of(ext, data)), new Case(ext, "qcow2", true, List.of(ext, data)))) {
            String what = c.format() + (c.write() ? " writer of " : " reader of ") + c.image().getFileName();
            List<List<Integer>> qemus = new java.util.ArrayList<>();
            List<String> options = c.write() ? List.of("-f", c.format()) : List.of("-r", "-f", c.format());
            try (Tools.Holder qemu = Tools.holdOpen(c.image(), options)) {
                // QEMU sets its bytes one by one and may change them while it builds the image's
                // graph: read them once they have stayed the same for 100 ms.
                List<List<Integer>> seen = List.of();
                int still = 0;
                for (int i = 0; i < 3000 && still < 10; i++) {
                    Thread.sleep(10);
                    List<List<Integer>> now = new java.util.ArrayList<>();
                    for (Path f : c.files()) {
                        now.add(ImageLock.heldBytes(f));
                    }
                    still = now.equals(seen) && !now.get(0).isEmpty() ? still + 1 : 0;
                    seen = now;
                }
                qemus.addAll(seen);
            }
            OpenOptions open = OpenOptions.defaults().withFormat(c.format());
            try (BlockDevice device = Images.open(c.image().toString(), c.write() ? open.writable() : open)) {
                for (int i = 0; i < c.files().size(); i++) {
                    assertThat(ImageLock.heldBytes(c.files().get(i))).as(what + ": " + c.files().get(i).getFileName())
                            .isEqualTo(qemus.get(i));
                }
            }
        }
    }

    /** A creator holds qemu-img create's bytes, then, its image made, those of the image's writer. */
    @Test
    void aCreatorHoldsCreatesLocksThenTheWritersOnes() throws Exception {
        Path out = dir.resolve("made.raw");
        try (HostFile file = HostFile.openForCreation(out, out.toString())) {
            // Use write and resize, deny resize (QEMU's file driver in its create).
            assertThat(ImageLock.heldBytes(out)).containsExactly(101, 103, 203);
            file.lockCreated(HostFile.Use.RAW);
            assertThat(ImageLock.heldBytes(out)).containsExactly(100, 101);
        }
        assertThat(ImageLock.heldBytes(out)).isEmpty();
    }

    /** An overlay can be created on a base that another process writes: qemu-img create reads its size with force-share. */
    @Test
    void anOverlayCanBeCreatedOnABaseInUse() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "3M");
        try (Tools.Holder qemu = Tools.holdOpen(base)) {
            Path top = dir.resolve("top.qcow2");
            assertThat(Qcow2Creator.create(top, CreateOptions.overlay(base.toString(), "qcow2")).virtualSize())
                    .isEqualTo(3 << 20);
        }
    }
}
