package org.qimg.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The output of {@code qemu-img map --output=json}, parsed. */
public final class QemuMap {
    /** One entry as qemu-img prints it; {@code offset} is -1 when it has none. */
    public record Entry(long start, long length, int depth, boolean present, boolean zero, boolean data, long offset) {
        public long end() {
            return start + length;
        }
    }

    private static final Pattern ENTRY = Pattern.compile(
            "\\{ \"start\": (\\d+), \"length\": (\\d+), \"depth\": (\\d+), \"present\": (true|false), "
                    + "\"zero\": (true|false), \"data\": (true|false)(?:, \"offset\": (\\d+))?}");

    private QemuMap() {
    }

    public static String json(CorpusImage image) {
        return Tools.run("qemu-img", "map", "--output=json", "-f", image.format(), image.path().toString());
    }

    public static List<Entry> parse(String json) {
        List<Entry> entries = new ArrayList<>();
        Matcher m = ENTRY.matcher(json);
        while (m.find()) {
            entries.add(new Entry(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Integer.parseInt(m.group(3)),
                    Boolean.parseBoolean(m.group(4)), Boolean.parseBoolean(m.group(5)), Boolean.parseBoolean(m.group(6)),
                    m.group(7) == null ? -1 : Long.parseLong(m.group(7))));
        }
        return entries;
    }

    public static List<Entry> of(CorpusImage image) {
        return parse(json(image));
    }
}
