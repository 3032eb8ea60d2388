package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.CheckResult;
import org.qimg.CheckResult.Repair;
import org.qimg.ImageException;
import org.qimg.testing.Corpus;
import org.qimg.testing.CorpusImage;
import org.qimg.testing.Damage;
import org.qimg.testing.QemuCheck;

/** qimg's check agrees with qemu-img check on the corpus and on damaged copies, and repairs as it does. */
class Qcow2CheckerTest {
    @TempDir
    Path dir;

    static Stream<CorpusImage> qcow2Images() {
        return Corpus.get().images().stream().filter(i -> i.format().equals("qcow2"));
    }

    private static CheckResult qimg(Path image, Repair repair, List<String> messages) throws IOException {
        return Qcow2Checker.check(image, repair, messages::add);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("qcow2Images")
    void agreesWithQemuImgOnTheCorpus(CorpusImage image) throws IOException {
        QemuCheck.Outcome qemu = QemuCheck.run(image.path());
        List<String> messages = new ArrayList<>();
        CheckResult ours = qimg(image.path(), Repair.NONE, messages);
        assertThat(ours).isEqualTo(qemu.result());
        assertThat(ours.exitCode()).isEqualTo(qemu.exitCode());
        assertThat(messages).isEmpty();
    }

    /** The damages: what to break in a copy of an image. */
    enum Kind {
        /** A data cluster nobody maps any more: its L2 entry is cleared. */
        LEAK,
        /** The refcount of a used data cluster is 0. */
        ZERO_REFCOUNT,
        /** The refcount of a data cluster used once is 2. */
        DOUBLE_REFCOUNT
    }

    static Stream<Arguments> damaged() {
        List<Arguments> cases = new ArrayList<>();
        for (String name : List.of("v3-64k-mixed", "v2-64k", "v3-512b", "ext-64k", "compressed-zstd", "snapshots",
                "bitmaps", "refcount1", "refcount64", "prealloc-metadata", "chain-3")) {
            for (Kind kind : Kind.values()) {
                if (kind == Kind.DOUBLE_REFCOUNT && name.equals("refcount1")) {
                    continue; // a 1-bit refcount cannot say 2
                }
                cases.add(Arguments.of(name, kind));
            }
        }
        return cases.stream();
    }

    private Path damagedCopy(String name, Kind kind, String suffix) throws IOException {
        Path copy = dir.resolve(name + "-" + kind + suffix + ".qcow2");
        Files.copy(Corpus.get().image(name).path(), copy);
        if (name.equals("snapshots")) {
            // Every data cluster of the active state is shared with a snapshot: add one used once.
            Corpus.io(copy, "write -P 0x7e 3M 64k");
        }
        switch (kind) {
            case LEAK -> Damage.leakDataCluster(copy);
            case ZERO_REFCOUNT -> Damage.setRefcount(copy, Damage.firstDataCluster(copy), 0);
            case DOUBLE_REFCOUNT -> Damage.setRefcount(copy, Damage.firstDataCluster(copy), 2);
        }
        return copy;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("damaged")
    void agreesWithQemuImgOnDamagedCopies(String name, Kind kind) throws IOException {
        Path image = damagedCopy(name, kind, "");
        QemuCheck.Outcome qemu = QemuCheck.run(image);
        List<String> messages = new ArrayList<>();
        CheckResult ours = qimg(image, Repair.NONE, messages);
        assertThat(ours).isEqualTo(qemu.result());
        assertThat(ours.exitCode()).isEqualTo(qemu.exitCode()).isNotZero();
        assertThat(messages).isEqualTo(qemu.stderr().lines().toList());
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("damaged")
    void repairsLikeQemuImg(String name, Kind kind) throws IOException {
        Path ours = damagedCopy(name, kind, "-qimg");
        Path theirs = damagedCopy(name, kind, "-qemu");
        Repair repair = kind == Kind.ZERO_REFCOUNT ? Repair.ALL : Repair.LEAKS;
        QemuCheck.Outcome qemu = QemuCheck.run(theirs, "-r", repair == Repair.ALL ? "all" : "leaks");
        List<String> messages = new ArrayList<>();
        CheckResult result = qimg(ours, repair, messages);
        assertThat(result).isEqualTo(qemu.result());
        assertThat(messages).isEqualTo(qemu.stderr().lines().toList());
        assertThat(result.exitCode()).isEqualTo(qemu.exitCode()).isZero();
        // Each checker finds the other's repair clean.
        for (Path repaired : List.of(ours, theirs)) {
            QemuCheck.Outcome again = QemuCheck.run(repaired);
            assertThat(again.exitCode()).as("qemu-img check of " + repaired.getFileName()).isZero();
            assertThat(qimg(repaired, Repair.NONE, new ArrayList<>())).isEqualTo(again.result());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("zeroRefcountImages")
    void leakRepairRefusesToRebuildLikeQemuImg(String name) throws IOException {
        Path image = damagedCopy(name, Kind.ZERO_REFCOUNT, "");
        QemuCheck.Outcome qemu = QemuCheck.run(image, "-r", "leaks");
        assertThat(qemu.exitCode()).isEqualTo(1);
        assertThat(qemu.stderr()).contains("Check failed: Input/output error");
        List<String> messages = new ArrayList<>();
        assertThatThrownBy(() -> qimg(image, Repair.LEAKS, messages)).isInstanceOf(ImageException.class)
                .hasMessage("Check failed: Input/output error");
        assertThat(messages).contains("ERROR need to rebuild refcount structures");
    }

    static Stream<String> zeroRefcountImages() {
        return Stream.of("v3-64k-mixed", "refcount1", "ext-64k");
    }
}
