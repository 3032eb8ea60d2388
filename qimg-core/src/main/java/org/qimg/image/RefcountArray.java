package org.qimg.image;

import java.util.HashMap;
import java.util.Map;

/**
 * Refcounts rebuilt in memory by the checker, one per host cluster (QEMU's in-memory refcount table).
 * Almost every count is 0, 1 or 2, so a byte holds it; the rare larger count lives in a map. Pages of
 * 64 Ki entries are allocated when first written, so references far apart cost little. Values are
 * unsigned (a 64-bit refcount can use every bit).
 */
final class RefcountArray {
    private static final int PAGE_BITS = 16;
    private static final int PAGE_SIZE = 1 << PAGE_BITS;
    private static final int LARGE = 0xFF;
    /** The most entries the array covers: QEMU's limit on clusters in an image file (INT_MAX). */
    static final long MAX_ENTRIES = Integer.MAX_VALUE;

    private byte[][] pages = new byte[16][];
    private final Map<Long, Long> large = new HashMap<>();

    /** The count of cluster {@code index}. */
    long get(long index) {
        int page = (int) (index >>> PAGE_BITS);
        if (page >= pages.length || pages[page] == null) {
            return 0;
        }
        int v = pages[page][(int) (index & (PAGE_SIZE - 1))] & 0xFF;
        return v == LARGE ? large.get(index) : v;
    }

    void set(long index, long value) {
        if (index < 0 || index >= MAX_ENTRIES) {
            throw new IllegalArgumentException("cluster index " + index + " out of range");
        }
        int page = (int) (index >>> PAGE_BITS);
        if (page >= pages.length) {
            if (value == 0) {
                return;
            }
            pages = java.util.Arrays.copyOf(pages, Math.max(page + 1, pages.length * 2));
        }
        byte[] p = pages[page];
        if (p == null) {
            if (value == 0) {
                return;
            }
            p = new byte[PAGE_SIZE];
            pages[page] = p;
        }
        int slot = (int) (index & (PAGE_SIZE - 1));
        if (Long.compareUnsigned(value, LARGE) >= 0) {
            p[slot] = (byte) LARGE;
            large.put(index, value);
        } else {
            if ((p[slot] & 0xFF) == LARGE) {
                large.remove(index);
            }
            p[slot] = (byte) value;
        }
    }

    /** Whether every entry of the page holding {@code index} is zero (lets scans skip empty pages). */
    boolean pageEmpty(long index) {
        int page = (int) (index >>> PAGE_BITS);
        return page >= pages.length || pages[page] == null;
    }

    /** Forgets every count. */
    void clear() {
        pages = new byte[16][];
        large.clear();
    }

    static long pageSize() {
        return PAGE_SIZE;
    }
}
