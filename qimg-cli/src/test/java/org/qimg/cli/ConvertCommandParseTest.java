package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qimg.testing.Corpus;
import org.qimg.testing.Tools;

import picocli.CommandLine;

/** The plain parser of {@code qimg convert} must read every command line it accepts as picocli does. */
class ConvertCommandParseTest {
    @TempDir
    Path dir;

    private static ConvertCommand picocli(String... args) {
        CommandLine.ParseResult result = new CommandLine(new Main()).parseArgs(args);
        return (ConvertCommand) result.subcommand().commandSpec().userObject();
    }

    private static List<Object> fields(ConvertCommand c) {
        return Arrays.asList(c.format, c.outputFormat, c.progress, c.quiet, c.sparseSize, c.debug, c.compress, c.forceShare, c.noCreate, c.cache,
                c.createOptions, c.outputBacking, c.outputBackingFormat, c.source, c.target);
    }

    @Test
    void acceptedCommandLinesMeanWhatPicocliReads() {
        String[][] accepted = {
            {"convert", "a.qcow2", "b.raw"},
            {"convert", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-O", "raw", "-f", "qcow2", "a.qcow2", "b.raw"},
            {"convert", "a.qcow2", "-O", "qcow2", "b.qcow2"},
            {"convert", "a.qcow2", "b.qcow2", "-O", "qcow2"},
            {"convert", "-p", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-q", "-c", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-c", "-p", "-q", "--debug", "-f", "raw", "-O", "qcow2", "a.img", "b.qcow2"},
            {"convert", "-O", "vmdk", "a.qcow2", "b.vmdk"},
            {"convert", "-f", "", "a.qcow2", "b.raw"},
            {"convert", "dir with space/a b.qcow2", "out put.raw"},
            {"convert", "-", "b.raw"},
            {"convert", "-U", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "a.qcow2", "--force-share", "b.raw"},
            {"convert", "-n", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-t", "none", "-O", "qcow2", "a.qcow2", "b.qcow2"},
        };
        for (String[] args : accepted) {
            ConvertCommand plain = ConvertCommand.parsePlain(args);
            assertThat(plain).as(String.join(" ", args)).isNotNull();
            assertThat(fields(plain)).as(String.join(" ", args)).isEqualTo(fields(picocli(args)));
        }
    }

    /** The progress moves as the data of one long extent is copied, not only at its end. */
    @Test
    void progressMovesThroughALongExtent() throws Exception {
        Path source = Tools.qcow2(dir.resolve("dense.qcow2"), "64M", "write -P 5 0 64M");
        for (String compress : new String[] {null, "-c"}) {
            Path out = dir.resolve("dense-out.qcow2");
            List<String> args = new ArrayList<>(List.of("convert", "-p", "-O", "qcow2"));
            if (compress != null) {
                args.add(compress);
            }
            args.addAll(List.of(source.toString(), out.toString()));
            ConvertCommand plain = ConvertCommand.parsePlain(args.toArray(String[]::new));
            StringWriter err = new StringWriter();
            plain.err = new PrintWriter(err);
            assertThat(plain.call()).isZero();
            // 32 chunks of 2 MiB: a print at each whole percent they pass, where the map's windows
            // (4, 8, 16, 32 MiB) alone would give six.
            assertThat(err.toString().split("\r")).as(compress == null ? "plain" : "-c").hasSizeGreaterThan(20);
            Tools.run("qemu-img", "compare", source.toString(), out.toString());
        }
    }

    @Test
    void thePlainPathConvertsAndShowsProgress() throws Exception {
        String source = Corpus.get().image("chain-3").path().toString();
        for (String format : new String[] {"qcow2", "raw"}) {
            Path out = dir.resolve("plain." + format);
            ConvertCommand plain = ConvertCommand.parsePlain(new String[] {"convert", "-p", "-O", format, source,
                    out.toString()});
            StringWriter err = new StringWriter();
            plain.err = new PrintWriter(err);
            assertThat(plain.call()).isZero();
            assertThat(err.toString()).startsWith("    (").endsWith("    (100.00/100%)\r\n");
            Tools.run("qemu-img", "compare", "-F", format, source, out.toString());
        }
    }

    @Test
    void everythingElseIsLeftToPicocli() {
        String[][] declined = {
            {},
            {"convert"},
            {"convert", "a.qcow2"},
            {"convert", "a.qcow2", "b.raw", "c.raw"},
            {"map", "a.qcow2", "b.qcow2"},
            {"convert", "--help"},
            {"convert", "--help", "a.qcow2", "b.raw"},
            {"convert", "-O", "qcow2", "-O", "raw", "a.qcow2", "b.raw"},
            {"convert", "-f", "qcow2", "-f", "raw", "a.qcow2", "b.raw"},
            {"convert", "-p", "-p", "a.qcow2", "b.raw"},
            {"convert", "-c", "-c", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "--debug", "--debug", "a.qcow2", "b.raw"},
            {"convert", "-pc", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-Oqcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-O=qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-O", "a.qcow2", "b.qcow2"},
            {"convert", "a.qcow2", "b.qcow2", "-O"},
            {"convert", "-O", "-p", "a.qcow2", "b.qcow2"},
            {"convert", "--progress", "a.qcow2", "b.raw"},
            {"convert", "--quiet", "a.qcow2", "b.raw"},
            {"convert", "-S", "0", "a.qcow2", "b.raw"},
            {"convert", "-o", "cluster_size=4k", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-B", "base.qcow2", "-O", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "-F", "qcow2", "a.qcow2", "b.qcow2"},
            {"convert", "--", "a.qcow2", "b.raw"},
            {"convert", "@args.txt"},
            {"convert", "a.qcow2", "@b.raw"},
            {"convert", "-f", "@fmt.txt", "a.qcow2", "b.raw"},
        };
        for (String[] args : declined) {
            assertThat(ConvertCommand.parsePlain(args)).as(String.join(" ", args)).isNull();
        }
    }
}
