package org.qimg.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;

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
}
