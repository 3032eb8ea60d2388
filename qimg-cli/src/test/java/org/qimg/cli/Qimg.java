package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

/** Runs the qimg command line in-process, and qemu-img beside it, capturing what each prints. */
final class Qimg {
    private Qimg() {
    }

    /** What a command printed and how it exited. */
    record Result(int exitCode, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out), new PrintWriter(err));
        return new Result(code, out.toString(), err.toString());
    }

    static Result qemuImg(String... args) {
        Tools.Result r = Tools.exec(null, List.of(concat("qemu-img", args)));
        return new Result(r.exitCode(), r.stdout(), r.stderr());
    }

    private static String[] concat(String first, String[] rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    /** qemu-img's error line with its program name replaced by ours. */
    static String asQimg(String qemuError) {
        return qemuError.replace("qemu-img: ", "qimg: ");
    }

    /**
     * A copy of the corpus image v3-64k-mixed whose fourth L2 entry (guest 192 KiB, data) points to
     * the unaligned host offset 0x10200: both QEMU and qimg refuse it when they reach it.
     */
    static Path damagedCopy(Path dir) throws IOException {
        Path bad = dir.resolve("damaged.qcow2");
        Files.copy(Corpus.get().image("v3-64k-mixed").path(), bad);
        try (RandomAccessFile f = new RandomAccessFile(bad.toFile(), "rw")) {
            f.seek(40);
            long l1 = f.readLong();
            f.seek(l1);
            long l2 = f.readLong() & 0x00ff_ffff_ffff_fe00L;
            f.seek(l2 + 8 * 3);
            f.writeLong(0x8000_0000_0001_0200L);
        }
        return bad;
    }
}
