package org.qimg.cli;

/**
 * Parses sizes and offsets the way qemu-img does (a number with an optional k, M, G, T, P, E suffix),
 * and prints them the way it does for people ("1.52 MiB").
 */
final class Sizes {
    private static final String[] UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

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

    /**
     * qemu-img's human size: the largest binary unit in which the value is at least 1000/1024, printed
     * with three significant digits as C's {@code %0.3g} prints them ("0 B", "472 KiB", "1.52 MiB").
     */
    static String human(long bytes) {
        double value = bytes;
        int exponent = bytes <= 0 ? 0 : Math.getExponent(value / (1000.0 / 1024.0));
        int unit = Math.min(exponent / 10, UNITS.length - 1);
        return cFormatG3(value / (double) (1L << (unit * 10))) + " " + UNITS[unit];
    }

    /** C's {@code %.3g}: three significant digits, trailing zeroes dropped, exponent form outside 1e-4..1e3. */
    static String cFormatG3(double value) {
        if (value == 0) {
            return "0";
        }
        java.math.BigDecimal rounded = new java.math.BigDecimal(value)
                .round(new java.math.MathContext(3, java.math.RoundingMode.HALF_EVEN));
        int exponent = rounded.precision() - rounded.scale() - 1;
        if (exponent < -4 || exponent >= 3) {
            java.math.BigDecimal mantissa = rounded.movePointLeft(exponent);
            String digits = strip(mantissa.setScale(2, java.math.RoundingMode.UNNECESSARY).toPlainString());
            return digits + (exponent < 0 ? "e-" : "e+") + String.format("%02d", Math.abs(exponent));
        }
        return strip(rounded.setScale(Math.max(0, 2 - exponent), java.math.RoundingMode.UNNECESSARY).toPlainString());
    }

    private static String strip(String fixed) {
        if (fixed.indexOf('.') < 0) {
            return fixed;
        }
        String s = fixed.replaceAll("0+$", "");
        return s.endsWith(".") ? s.substring(0, s.length() - 1) : s;
    }
}
