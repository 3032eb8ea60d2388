package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.testing.Tools;

import picocli.CommandLine;

/** The plain parser of {@code qimg bench} must read every command line it accepts as picocli does. */
class BenchCommandParseTest {
    @TempDir
    Path dir;

    private static BenchCommand picocli(String... args) {
        CommandLine.ParseResult result = new CommandLine(new Main()).parseArgs(args);
        return (BenchCommand) result.subcommand().commandSpec().userObject();
    }

    private static List<Object> fields(BenchCommand c) {
        return Arrays.asList(c.format, c.write, c.count, c.depth, c.bufferSize, c.stepSize, c.offsetText, c.pattern,
                c.flushInterval, c.quiet, c.debug, c.forceShare, c.image);
    }

    @Test
    void acceptedCommandLinesMeanWhatPicocliReads() {
        String[][] accepted = {
            {"bench", "a.qcow2"},
            {"bench", "-w", "a.qcow2"},
            {"bench", "-q", "-w", "-c", "1024", "-s", "1M", "a.qcow2"},
            {"bench", "-q", "-w", "-c", "20000", "-s", "4k", "-S", "1234567", "a.qcow2"},
            {"bench", "a.qcow2", "-w", "-d", "1", "-o", "512", "-f", "qcow2"},
            {"bench", "--pattern=90", "--flush-interval=16", "--debug", "-c", "0", "a.qcow2"},
            {"bench", "-d", "0", "-s", "0", "a b.qcow2"},
            {"bench", "-f", "", "-"},
            {"bench", "-U", "-c", "10", "a.qcow2"},
            {"bench", "--force-share", "a.qcow2"},
        };
        for (String[] args : accepted) {
            BenchCommand plain = BenchCommand.parsePlain(args);
            assertThat(plain).as(String.join(" ", args)).isNotNull();
            assertThat(fields(plain)).as(String.join(" ", args)).isEqualTo(fields(picocli(args)));
        }
    }

    @Test
    void everythingElseIsLeftToPicocli() {
        String[][] declined = {
            {},
            {"bench"},
            {"map", "a.qcow2"},
            {"bench", "a.qcow2", "b.qcow2"},
            {"bench", "--help"},
            {"bench", "-w", "-w", "a.qcow2"},
            {"bench", "-c", "1", "-c", "2", "a.qcow2"},
            {"bench", "-wq", "a.qcow2"},
            {"bench", "-c1024", "a.qcow2"},
            {"bench", "-c", "1k", "a.qcow2"},
            {"bench", "-c", "010", "a.qcow2"},
            {"bench", "-c", "+5", "a.qcow2"},
            {"bench", "-c", "-5", "a.qcow2"},
            {"bench", "-d", "99999999999", "a.qcow2"},
            {"bench", "-o", "-1", "a.qcow2"},
            {"bench", "a.qcow2", "-c"},
            {"bench", "--pattern", "5", "a.qcow2"},
            {"bench", "--pattern=0x5a", "a.qcow2"},
            {"bench", "--pattern=1", "--pattern=2", "a.qcow2"},
            {"bench", "--flush-interval=", "a.qcow2"},
            {"bench", "--quiet", "a.qcow2"},
            {"bench", "-n", "a.qcow2"},
            {"bench", "--", "a.qcow2"},
            {"bench", "@args.txt"},
            {"bench", "-f", "@fmt", "a.qcow2"},
        };
        for (String[] args : declined) {
            assertThat(BenchCommand.parsePlain(args)).as(String.join(" ", args)).isNull();
        }
    }

    @Test
    void thePlainPathWritesWhatQemuImgBenchWrites() throws Exception {
        Path ours = dir.resolve("ours.qcow2");
        Path theirs = dir.resolve("theirs.qcow2");
        for (Path image : List.of(ours, theirs)) {
            Tools.run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", image.toString(), "8M");
        }
        String[] args = {"-w", "-c", "300", "-s", "6000", "-S", "7777", "-o", "1000", "-d", "8", "--pattern=90",
            "--flush-interval=50"};
        BenchCommand plain = BenchCommand.parsePlain(concat("bench", args, ours.toString()));
        StringWriter out = new StringWriter();
        plain.out = new PrintWriter(out);
        assertThat(plain.call()).isZero();
        assertThat(out.toString()).startsWith("Sending 300 write requests, 6000 bytes each, 8 in parallel "
                + "(starting at offset 1000, step size 7777)").contains("Run completed in ");
        Tools.run(concat("qemu-img", concat("bench", args, theirs.toString())));
        Tools.run("qemu-img", "compare", "-q", theirs.toString(), ours.toString());
        Tools.run("qemu-img", "check", "-q", ours.toString());
    }

    private static String[] concat(String first, String[] middle, String... last) {
        String[] all = new String[1 + middle.length + last.length];
        all[0] = first;
        System.arraycopy(middle, 0, all, 1, middle.length);
        System.arraycopy(last, 0, all, 1 + middle.length, last.length);
        return all;
    }
}
