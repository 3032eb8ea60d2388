package org.qimg.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.qimg.CreateOptions;
import org.qimg.ImageException;

/**
 * qemu-img's {@code -o key=value,key=value} syntax for create options: a comma inside a value is
 * written twice, a bare key means {@code key=on}, later values win. Knows the options of the qcow2 and
 * raw formats, and prints qemu-img's {@code Formatting '…'} line.
 */
final class CreateOptionsParser {
    /** The qcow2 options, in the order qemu-img prints them. */
    static final List<String> QCOW2_KEYS = List.of("cluster_size", "extended_l2", "preallocation", "compression_type",
            "size", "compat", "backing_file", "backing_fmt", "data_file", "data_file_raw", "lazy_refcounts",
            "refcount_bits");
    static final List<String> RAW_KEYS = List.of("size", "preallocation");
    private static final List<String> BOOLEANS = List.of("extended_l2", "data_file_raw", "lazy_refcounts");
    private static final List<String> NUMBERS = List.of("cluster_size", "size", "refcount_bits");

    private final String format;
    /** The options as given (after -b, -F and the size argument are folded in), by key. */
    private final Map<String, String> given = new LinkedHashMap<>();
    /** Numeric options as parsed. */
    private final Map<String, Long> numbers = new LinkedHashMap<>();

    CreateOptionsParser(String format) {
        this.format = format;
    }

    List<String> keys() {
        return format.equals("raw") ? RAW_KEYS : QCOW2_KEYS;
    }

    /** Whether {@code -o} asked for the list of options. */
    static boolean wantsHelp(List<String> optionStrings) {
        for (String o : optionStrings) {
            for (String item : split(o)) {
                if (item.equals("help") || item.equals("?")) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Adds the options of one {@code -o} argument. */
    void add(String optionString) throws ImageException {
        for (String item : split(optionString)) {
            if (item.isEmpty()) {
                continue;
            }
            int eq = item.indexOf('=');
            String key = eq < 0 ? item : item.substring(0, eq);
            String value = eq < 0 ? "on" : item.substring(eq + 1);
            if (key.startsWith("encrypt")) {
                throw new ImageException.Unsupported("encrypted images are not supported ('" + key + "')");
            }
            if (!keys().contains(key)) {
                throw new ImageException("Invalid parameter '" + key + "'");
            }
            set(key, value);
        }
    }

    /** Sets one option, checking the values qemu-img checks while parsing. */
    void set(String key, String value) throws ImageException {
        if (BOOLEANS.contains(key)) {
            parseBoolean(key, value);
        } else if (NUMBERS.contains(key)) {
            long n;
            try {
                n = key.equals("refcount_bits") ? Long.parseLong(value.strip()) : Sizes.parse(value, key);
            } catch (IllegalArgumentException e) {
                throw new ImageException(key.equals("refcount_bits") ? "Parameter 'refcount_bits' expects a number"
                        : "Parameter '" + key + "' expects a non-negative number below 2^64 (optional suffix k, M, G, T, P or E)");
            }
            numbers.put(key, n);
        }
        given.put(key, value);
    }

    boolean has(String key) {
        return given.containsKey(key);
    }

    String get(String key) {
        return given.get(key);
    }

    long number(String key) {
        return numbers.get(key);
    }

    /** The options as {@link CreateOptions} (size: the given one, or taken from the backing image). */
    CreateOptions toOptions() throws ImageException {
        CreateOptions o = CreateOptions.ofSize(has("size") ? number("size") : CreateOptions.SIZE_OF_BACKING);
        if (has("compat")) {
            o = o.withCompat(get("compat"));
        }
        if (has("cluster_size")) {
            o = o.withClusterSize(number("cluster_size"));
        }
        if (has("extended_l2")) {
            o = o.withExtendedL2(parseBoolean("extended_l2", get("extended_l2")));
        }
        if (has("compression_type")) {
            o = o.withCompressionType(get("compression_type"));
        }
        if (has("refcount_bits")) {
            long bits = number("refcount_bits");
            o = o.withRefcountBits((int) Math.min(bits, 1024));
        }
        if (has("lazy_refcounts")) {
            o = o.withLazyRefcounts(parseBoolean("lazy_refcounts", get("lazy_refcounts")));
        }
        o = o.withBacking(get("backing_file"), get("backing_fmt"));
        if (has("data_file")) {
            o = o.withDataFile(get("data_file"), has("data_file_raw") && parseBoolean("data_file_raw", get("data_file_raw")));
        } else if (has("data_file_raw") && parseBoolean("data_file_raw", get("data_file_raw"))) {
            throw new ImageException("data-file-raw requires data-file");
        }
        if (has("preallocation")) {
            o = o.withPreallocation(CreateOptions.Preallocation.parse(get("preallocation")));
        }
        return o;
    }

    /**
     * qemu-img's line: every option of the format that is set or has a default, in the format's
     * order; numbers as numbers, the rest as given (commas doubled).
     */
    String formattingLine(String image) {
        StringBuilder b = new StringBuilder("Formatting '").append(image).append("', fmt=").append(format);
        for (String key : keys()) {
            String value;
            if (numbers.containsKey(key)) {
                value = Long.toUnsignedString(numbers.get(key));
            } else if (given.containsKey(key)) {
                value = given.get(key).replace(",", ",,");
            } else {
                value = defaultValue(key);
            }
            if (value != null) {
                b.append(' ').append(key).append('=').append(value);
            }
        }
        return b.toString();
    }

    private String defaultValue(String key) {
        if (format.equals("raw")) {
            return null;
        }
        return switch (key) {
            case "cluster_size" -> Long.toString(CreateOptions.DEFAULT_CLUSTER_SIZE);
            case "extended_l2", "lazy_refcounts" -> "off";
            case "compression_type" -> "zlib";
            case "refcount_bits" -> "16";
            default -> null;
        };
    }

    /** The help text of {@code -o help}. */
    String help() {
        StringBuilder b = new StringBuilder("Supported ").append(format).append(" options:\n");
        for (String key : keys().stream().sorted().toList()) {
            String type = BOOLEANS.contains(key) ? "<bool (on/off)>" : key.equals("refcount_bits") ? "<num>"
                    : NUMBERS.contains(key) ? "<size>" : "<str>";
            b.append(String.format("  %-22s - %s%n", key + "=" + type, describe(key)));
        }
        return b.toString();
    }

    private static String describe(String key) {
        return switch (key) {
            case "backing_file" -> "File name of a base image";
            case "backing_fmt" -> "Image format of the base image";
            case "cluster_size" -> "qcow2 cluster size";
            case "compat" -> "Compatibility level (v2 [0.10] or v3 [1.1])";
            case "compression_type" -> "Compression method used for image cluster compression (zlib or zstd)";
            case "data_file" -> "File name of an external data file";
            case "data_file_raw" -> "The external data file must stay valid as a raw image";
            case "extended_l2" -> "Extended L2 tables";
            case "lazy_refcounts" -> "Postpone refcount updates";
            case "preallocation" -> "Preallocation mode (allowed values: off, metadata, falloc, full)";
            case "refcount_bits" -> "Width of a reference count entry in bits";
            default -> "Virtual disk size";
        };
    }

    static boolean parseBoolean(String key, String value) throws ImageException {
        return switch (value) {
            case "on", "yes", "true", "y" -> true;
            case "off", "no", "false", "n" -> false;
            default -> throw new ImageException("Parameter '" + key + "' expects 'on' or 'off'");
        };
    }

    /** Splits at single commas; a doubled comma is a comma of the value. */
    static List<String> split(String text) {
        List<String> items = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ',') {
                if (i + 1 < text.length() && text.charAt(i + 1) == ',') {
                    current.append(',');
                    i++;
                } else {
                    items.add(current.toString());
                    current.setLength(0);
                }
            } else {
                current.append(c);
            }
        }
        items.add(current.toString());
        return items;
    }
}
