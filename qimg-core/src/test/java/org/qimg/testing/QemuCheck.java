package org.qimg.testing;

import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.qimg.CheckResult;

/** Runs {@code qemu-img check --output=json} and reads its answer. */
public final class QemuCheck {
    private static final Pattern NUMBER = Pattern.compile("\"([a-z-]+)\": (\\d+)");

    private QemuCheck() {
    }

    /**
     * What qemu-img check says about an image.
     *
     * @param exitCode 0 clean, 1 check failed, 2 corruptions, 3 leaks
     * @param result   the report's numbers (null when qemu-img printed none)
     * @param stderr   qemu-img's messages
     */
    public record Outcome(int exitCode, CheckResult result, String stdout, String stderr) {
    }

    public static Outcome run(Path image, String... extra) {
        List<String> cmd = new java.util.ArrayList<>(List.of("qemu-img", "check", "--output=json"));
        cmd.addAll(List.of(extra));
        cmd.add(image.toString());
        Tools.Result r = Tools.exec(null, cmd);
        return new Outcome(r.exitCode(), r.stdout().isBlank() ? null : parse(r.stdout()), r.stdout(), r.stderr());
    }

    /** The numbers of a qemu-img check JSON report; absent fields are 0, as qemu-img leaves zeroes out. */
    public static CheckResult parse(String json) {
        java.util.Map<String, Long> values = new java.util.HashMap<>();
        Matcher m = NUMBER.matcher(json);
        while (m.find()) {
            values.put(m.group(1), Long.parseLong(m.group(2)));
        }
        return new CheckResult(values.getOrDefault("check-errors", 0L), values.getOrDefault("corruptions", 0L),
                values.getOrDefault("leaks", 0L), values.getOrDefault("corruptions-fixed", 0L),
                values.getOrDefault("leaks-fixed", 0L), values.getOrDefault("image-end-offset", 0L),
                values.getOrDefault("total-clusters", 0L), values.getOrDefault("allocated-clusters", 0L),
                values.getOrDefault("fragmented-clusters", 0L), values.getOrDefault("compressed-clusters", 0L));
    }
}
