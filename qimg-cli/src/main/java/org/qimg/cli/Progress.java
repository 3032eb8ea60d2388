package org.qimg.cli;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * qemu-img's simple progress display, {@code "    (12.34/100%)\r"}, rewritten in place and ended with a
 * newline. It prints at 0 and 100 and whenever the value moved by more than {@code minStep} points
 * since the last print. Not thread-safe: one caller reports.
 */
final class Progress {
    private final PrintWriter out;
    private final boolean enabled;
    private final float minStep;
    private float current;
    private float lastPrinted;

    Progress(PrintWriter out, boolean enabled, float minStep) {
        this.out = out;
        this.enabled = enabled;
        this.minStep = minStep;
    }

    /** Sets the display to {@code done} of {@code total} units. */
    void update(long done, long total) {
        set(total <= 0 ? 100f : (float) (100.0 * done / total));
    }

    void set(float percent) {
        if (!enabled) {
            return;
        }
        current = Math.min(100f, percent);
        if (current > lastPrinted + minStep || current < lastPrinted - minStep || current == 0 || current == 100) {
            lastPrinted = current;
            print();
        }
    }

    /** Prints the final value and ends the line. */
    void end() {
        if (!enabled) {
            return;
        }
        print();
        out.print('\n');
        out.flush();
    }

    private void print() {
        out.print(String.format(Locale.ROOT, "    (%3.2f/100%%)\r", current));
        out.flush();
    }
}
