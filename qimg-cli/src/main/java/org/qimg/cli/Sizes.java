package org.qimg.cli;

/** Parses sizes and offsets the way qemu-img does: a number with an optional k, M, G, T, P, E suffix. */
final class Sizes {
    private Sizes() {
    }

    static long parse(String text, String what) {
        String t = text.strip();
        if (t.isEmpty()) {
            throw new IllegalArgumentException("Invalid " + what + " specified: ''");
        }
        int shift = 0;
        char last = Character.toLowerCase(t.charAt(t.length() - 1));
        int suffix = "bkmgtpe".indexOf(last);
        if (suffix >= 0 && !Character.isDigit(last)) {
            shift = suffix == 0 ? 0 : 10 * suffix;
            t = t.substring(0, t.length() - 1);
        }
        long value;
        try {
            value = Long.parseLong(t);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Invalid " + what + " specified: '" + text + "'");
        }
        if (value < 0 || (shift > 0 && value > (Long.MAX_VALUE >> shift))) {
            throw new IllegalArgumentException("Invalid " + what + " specified: '" + text + "'");
        }
        return value << shift;
    }
}
