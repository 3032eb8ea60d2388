package org.qimg.image;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Orders overlapping writes that run concurrently: a writer enters the byte range it covers and
 * waits while a writer that came before it is inside, or waiting for, an overlapping range. So two
 * overlapping writes never interleave, they land in the order they arrived, and none waits forever;
 * writers of disjoint ranges pass each other freely.
 */
final class RangeGate {
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition left = lock.newCondition();
    /** The ranges inside the gate, as [start, end) pairs. */
    private final List<long[]> inside = new ArrayList<>();
    /** The ranges waiting to enter, oldest first. */
    private final List<long[]> waiting = new ArrayList<>();

    /** Enters [start, end), waiting until no writer inside overlaps it; returns the handle to leave with. */
    long[] enter(long start, long end) {
        long[] range = {start, end};
        lock.lock();
        try {
            waiting.add(range);
            while (blocked(range)) {
                left.awaitUninterruptibly();
            }
            waiting.remove(range);
            inside.add(range);
        } finally {
            lock.unlock();
        }
        return range;
    }

    void leave(long[] range) {
        lock.lock();
        try {
            inside.remove(range);
            left.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private boolean blocked(long[] range) {
        for (long[] r : inside) {
            if (overlap(r, range)) {
                return true;
            }
        }
        for (long[] r : waiting) {
            if (r == range) {
                return false;
            }
            if (overlap(r, range)) {
                return true;
            }
        }
        return false;
    }

    private static boolean overlap(long[] a, long[] b) {
        return a[0] < b[1] && b[0] < a[1];
    }
}
