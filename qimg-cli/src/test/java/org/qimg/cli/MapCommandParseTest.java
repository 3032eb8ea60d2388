package org.qimg.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;

import org.junit.jupiter.api.Test;

import picocli.CommandLine;

/** The plain parser of {@code qimg map} must read every command line it accepts as picocli does. */
class MapCommandParseTest {

    private static MapCommand picocli(String... args) {
        CommandLine.ParseResult result = new CommandLine(new Main()).parseArgs(args);
        return (MapCommand) result.subcommand().commandSpec().userObject();
    }

    private static List<Object> fields(MapCommand c) {
        return java.util.Arrays.asList(c.format, c.output, c.startOffset, c.maxLength, c.debug, c.forceShare, c.image);
    }

    @Test
    void acceptedCommandLinesMeanWhatPicocliReads() {
        String[][] accepted = {
            {"map", "a.qcow2"},
            {"map", "--output=json", "a.qcow2"},
            {"map", "--output", "json", "a.qcow2"},
            {"map", "a.qcow2", "--output=human"},
            {"map", "-f", "qcow2", "--output=json", "a.qcow2"},
            {"map", "-f", "raw", "a.img"},
            {"map", "-s", "1M", "-l", "64k", "a.qcow2"},
            {"map", "--start-offset=4096", "--max-length=8192", "a.qcow2"},
            {"map", "--start-offset", "4096", "--max-length", "8192", "a.qcow2"},
            {"map", "--debug", "a.qcow2"},
            {"map", "a.qcow2", "--debug", "--output=json"},
            {"map", "--output=", "a.qcow2"},
            {"map", "dir with space/a b.qcow2"},
            {"map", "-"},
            {"map", "-U", "--output=json", "a.qcow2"},
            {"map", "a.qcow2", "--force-share"},
        };
        for (String[] args : accepted) {
            MapCommand plain = MapCommand.parsePlain(args);
            assertThat(plain).as(String.join(" ", args)).isNotNull();
            assertThat(fields(plain)).as(String.join(" ", args)).isEqualTo(fields(picocli(args)));
        }
    }

    @Test
    void everythingElseIsLeftToPicocli() {
        String[][] declined = {
            {},
            {"map"},
            {"seek", "--data", "a.qcow2", "0"},
            {"--help"},
            {"map", "--help"},
            {"map", "a.qcow2", "b.qcow2"},
            {"map", "--output=json", "--output=human", "a.qcow2"},
            {"map", "--debug", "--debug", "a.qcow2"},
            {"map", "-U", "-U", "a.qcow2"},
            {"map", "-f", "a.qcow2"},
            {"map", "-fqcow2", "a.qcow2"},
            {"map", "-f=qcow2", "a.qcow2"},
            {"map", "--output"},
            {"map", "-s", "-1", "a.qcow2"},
            {"map", "--unknown", "a.qcow2"},
            {"map", "--", "a.qcow2"},
            {"map", "@args.txt"},
            {"map", "-s", "1", "-s", "2", "a.qcow2"},
            {"map", "-l", "1", "--max-length=2", "a.qcow2"},
        };
        for (String[] args : declined) {
            assertThat(MapCommand.parsePlain(args)).as(String.join(" ", args)).isNull();
        }
    }
}
