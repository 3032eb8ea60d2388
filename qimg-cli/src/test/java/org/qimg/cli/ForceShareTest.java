package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.testing.Tools;

/**
 * With another process writing an image, the commands that read it refuse it as qemu-img's do (same
 * exit code), and read it with {@code -U} / {@code --force-share} as qemu-img's do (same exit code,
 * and for info and map the same output); a writer cannot force-share.
 */
class ForceShareTest {
    @TempDir
    Path dir;

    @Test
    void readersRefuseAnImageInUseAndReadItWithForceShare() throws Exception {
        Path image = dir.resolve("busy.qcow2");
        Path copy = dir.resolve("copy.qcow2");
        Tools.run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "1M");
        Tools.run("qemu-io", "-f", "qcow2", "-c", "write -q -P 7 64k 64k", image.toString());
        Tools.run("qemu-img", "convert", "-O", "qcow2", image.toString(), copy.toString());
        String busy = image.toString();
        List<List<String>> commands = List.of(
                List.of("info", busy), List.of("info", "--output=json", busy), List.of("map", "--output=json", busy),
                List.of("map", busy), List.of("compare", busy, copy.toString()),
                List.of("convert", "-O", "raw", busy, dir.resolve("out.raw").toString()),
                List.of("bench", "-c", "16", busy));
        try (Tools.Holder writer = Tools.holdOpen(image)) {
            for (List<String> command : commands) {
                for (String share : new String[] {null, "-U", "--force-share"}) {
                    List<String> args = new ArrayList<>(command);
                    if (share != null) {
                        args.add(1, share);
                    }
                    String what = String.join(" ", args);
                    Qimg.Result qemu = Qimg.qemuImg(args.toArray(String[]::new));
                    Qimg.Result ours = Qimg.run(args.toArray(String[]::new));
                    assertThat(ours.exitCode()).as(what + ": " + ours.err()).isEqualTo(qemu.exitCode());
                    if (share == null) {
                        assertThat(ours.err()).as(what).contains("lock");
                    } else if (!command.get(0).equals("bench")) {
                        assertThat(ours.out()).as(what).isEqualTo(qemu.out());
                    }
                }
            }
        }
        for (List<String> args : List.of(List.of("bench", "-w", "-U", "-c", "1", busy), List.of("io", "-U", "-c", "write 0 4k", busy))) {
            Qimg.Result ours = Qimg.run(args.toArray(String[]::new));
            assertThat(ours.exitCode()).as(String.join(" ", args)).isEqualTo(1);
            assertThat(ours.err()).as(String.join(" ", args))
                    .contains("force-share=on can only be used with read-only images");
        }
        Qimg.Result read = Qimg.run("io", "-r", "-U", "-c", "read -P 7 64k 64k", busy);
        assertThat(read.exitCode()).as(read.err()).isZero();
    }
}
