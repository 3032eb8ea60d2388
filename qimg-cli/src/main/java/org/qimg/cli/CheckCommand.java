package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

import org.qimg.CheckResult;
import org.qimg.CheckResult.Repair;
import org.qimg.ImageException;
import org.qimg.format.Qcow2Header;
import org.qimg.image.Qcow2Checker;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qimg check}: qemu-img check for qcow2 images, with its reports (human and JSON), its stderr
 * messages, repairs ({@code -r leaks}, {@code -r all}) and exit codes: 0 clean, 1 check not completed,
 * 2 corruptions, 3 leaks only, 63 for a format without checks.
 */
@Command(name = "check", description = "Check an image for leaked clusters and corruptions; -r repairs them.")
final class CheckCommand implements Callable<Integer> {
    /** qemu-img's exit code for a format that has no consistency check (raw). */
    static final int NOT_SUPPORTED = 63;

    @Option(names = "-f", paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = "-r", paramLabel = "leaks|all", description = "repair leaked clusters, or everything that can be")
    String repair;

    @Option(names = "--output", paramLabel = "FMT", defaultValue = "human", description = "human or json")
    String output;

    @Option(names = "-q", description = "print no report")
    boolean quiet;

    @Option(names = {"-U", "--force-share"}, description = "check without taking the image's locks (no -r)")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        boolean json = Cli.json(output);
        Repair mode = repair == null ? Repair.NONE : switch (repair) {
            case "leaks" -> Repair.LEAKS;
            case "all" -> Repair.ALL;
            default -> throw new IllegalArgumentException("Unknown option value for -r (expecting 'leaks' or 'all'): "
                    + repair);
        };
        Path path = Path.of(image);
        String fmt = format != null ? format : probe(path);
        if (fmt.equals("raw")) {
            err.println("qimg: This image format does not support checks");
            err.flush();
            return NOT_SUPPORTED;
        }
        if (!fmt.equals("qcow2")) {
            throw new IllegalArgumentException("Unknown file format '" + fmt + "'");
        }
        CheckResult result;
        try {
            result = Qcow2Checker.check(path, mode, forceShare, message -> {
                err.println(message);
                err.flush();
            });
        } catch (ImageException e) {
            if (e.getCause() instanceof ImageException cause) {
                err.println("qimg: " + cause.getMessage());
            }
            throw e;
        }
        if (!quiet) {
            if (result.repaired() && !json) {
                out.printf("The following inconsistencies were found and repaired:%n%n    %d leaked clusters%n"
                        + "    %d corruptions%n%nDouble checking the fixed image now...%n", result.leaksFixed(),
                        result.corruptionsFixed());
            }
            out.print(json ? json(result, image) : human(result));
        }
        out.flush();
        if (result.checkErrors() != 0) {
            err.println("qimg: Check failed");
            err.flush();
            return 1;
        }
        return result.exitCode();
    }

    /** The format by content: qcow2 by its magic, raw otherwise (a missing file is reported later). */
    private static String probe(Path path) throws IOException {
        if (!Files.isRegularFile(path)) {
            return "qcow2";
        }
        try (var in = Files.newInputStream(path)) {
            byte[] magic = in.readNBytes(4);
            return magic.length == 4 && java.nio.ByteBuffer.wrap(magic).getInt() == Qcow2Header.MAGIC ? "qcow2" : "raw";
        }
    }

    /** qemu-img's dump_human_image_check. */
    static String human(CheckResult r) {
        StringBuilder b = new StringBuilder();
        if (r.corruptions() == 0 && r.leaks() == 0 && r.checkErrors() == 0) {
            b.append("No errors were found on the image.\n");
        } else {
            if (r.corruptions() != 0) {
                b.append('\n').append(r.corruptions()).append(" errors were found on the image.\n")
                        .append("Data may be corrupted, or further writes to the image may corrupt it.\n");
            }
            if (r.leaks() != 0) {
                b.append('\n').append(r.leaks()).append(" leaked clusters were found on the image.\n")
                        .append("This means waste of disk space, but no harm to data.\n");
            }
            if (r.checkErrors() != 0) {
                b.append('\n').append(r.checkErrors()).append(" internal errors have occurred during the check.\n");
            }
        }
        if (r.totalClusters() != 0 && r.allocatedClusters() != 0) {
            b.append(r.allocatedClusters()).append('/').append(r.totalClusters()).append(" = ")
                    .append(percent(r.allocatedClusters(), r.totalClusters())).append("% allocated, ")
                    .append(percent(r.fragmentedClusters(), r.allocatedClusters())).append("% fragmented, ")
                    .append(percent(r.compressedClusters(), r.allocatedClusters())).append("% compressed clusters\n");
        }
        if (r.imageEndOffset() != 0) {
            b.append("Image end offset: ").append(r.imageEndOffset()).append('\n');
        }
        return b.toString();
    }

    /** C's "%0.2f" of part * 100.0 / whole: the exact double, rounded half to even. */
    static String percent(long part, long whole) {
        double value = part * 100.0 / whole;
        return new BigDecimal(value).setScale(2, RoundingMode.HALF_EVEN).toPlainString();
    }

    /**
     * qemu-img's JSON report: ImageCheck's members in the order QEMU's dictionary yields them (by the
     * hash of the key), optional numbers only when not zero.
     */
    static String json(CheckResult r, String filename) {
        StringBuilder b = new StringBuilder("{\n");
        String sep = "";
        Object[][] members = {
                {"image-end-offset", r.imageEndOffset()}, {"compressed-clusters", r.compressedClusters()},
                {"total-clusters", r.totalClusters()}, {"corruptions", r.corruptions()},
                {"corruptions-fixed", r.corruptionsFixed()}, {"check-errors", null}, {"leaks", r.leaks()},
                {"leaks-fixed", r.leaksFixed()}, {"allocated-clusters", r.allocatedClusters()},
                {"filename", null}, {"format", null}, {"fragmented-clusters", r.fragmentedClusters()},
        };
        for (Object[] m : members) {
            String key = (String) m[0];
            String value = switch (key) {
                case "check-errors" -> Long.toString(r.checkErrors());
                case "filename" -> quote(filename);
                case "format" -> quote("qcow2");
                default -> (Long) m[1] == 0 ? null : Long.toString((Long) m[1]);
            };
            if (value == null) {
                continue;
            }
            b.append(sep).append("    \"").append(key).append("\": ").append(value);
            sep = ",\n";
        }
        return b.append("\n}\n").toString();
    }

    /** A JSON string as QEMU writes it: printable ASCII as is, everything else escaped. */
    static String quote(String text) {
        StringBuilder b = new StringBuilder("\"");
        text.codePoints().forEach(cp -> {
            switch (cp) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (cp >= 0x20 && cp < 0x7F) {
                        b.append((char) cp);
                    } else if (cp > 0xFFFF) {
                        b.append(String.format("\\u%04X\\u%04X", 0xD800 + ((cp - 0x10000) >> 10),
                                0xDC00 + ((cp - 0x10000) & 0x3FF)));
                    } else {
                        b.append(String.format("\\u%04X", cp));
                    }
                }
            }
        });
        return b.append('"').toString();
    }
}
