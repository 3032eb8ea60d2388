package org.qimg.nbd;

import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The direct buffers of one connection (write payloads, read replies, block status), bounded in total:
 * {@link #acquire} waits while the connection's requests in flight already hold {@code budget} bytes,
 * which stops a client from making the server allocate without limit. Buffers come in power-of-two
 * sizes and are reused; released ones are kept while the total stays within the budget.
 */
final class BufferPool {
    private static final int MIN_SHIFT = 12;
    private static final int MAX_SHIFT = 25;

    private final long budget;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition released = lock.newCondition();
    /** Released buffers by size class: class i holds buffers of {@code 2^(i + MIN_SHIFT)} bytes. */
    private final List<ArrayDeque<ByteBuffer>> free = new ArrayList<>();
    private long inUse;
    private long pooled;

    BufferPool(long budget) {
        if (budget < (1L << MAX_SHIFT)) {
            throw new IllegalArgumentException("a budget of " + budget + " bytes cannot hold the largest buffer");
        }
        this.budget = budget;
        for (int shift = MIN_SHIFT; shift <= MAX_SHIFT; shift++) {
            free.add(new ArrayDeque<>());
        }
    }

    /** Largest buffer the pool hands out. */
    static int maxSize() {
        return 1 << MAX_SHIFT;
    }

    /** A buffer with position 0 and limit {@code size}, its content undefined. */
    ByteBuffer acquire(int size) {
        if (size < 0 || size > maxSize()) {
            throw new IllegalArgumentException("buffer of " + size + " bytes (at most " + maxSize() + ")");
        }
        int sizeClass = sizeClass(size);
        long capacity = 1L << (sizeClass + MIN_SHIFT);
        lock.lock();
        try {
            while (inUse + capacity > budget) {
                released.awaitUninterruptibly();
            }
            ByteBuffer buffer = free.get(sizeClass).pollFirst();
            if (buffer != null) {
                pooled -= capacity;
            } else {
                for (int i = free.size() - 1; i >= 0 && inUse + pooled + capacity > budget; i--) {
                    while (!free.get(i).isEmpty() && inUse + pooled + capacity > budget) {
                        free.get(i).pollFirst(); // left to the garbage collector
                        pooled -= 1L << (i + MIN_SHIFT);
                    }
                }
                buffer = ByteBuffer.allocateDirect((int) capacity);
            }
            inUse += capacity;
            return buffer.clear().limit(size);
        } finally {
            lock.unlock();
        }
    }

    /** Gives back a buffer from {@link #acquire}; null is ignored. */
    void release(ByteBuffer buffer) {
        if (buffer == null) {
            return;
        }
        int capacity = buffer.capacity();
        int sizeClass = Integer.numberOfTrailingZeros(capacity) - MIN_SHIFT;
        lock.lock();
        try {
            inUse -= capacity;
            if (inUse + pooled + capacity <= budget) {
                free.get(sizeClass).addFirst(buffer);
                pooled += capacity;
            }
            released.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private static int sizeClass(int size) {
        int shift = size <= 1 << MIN_SHIFT ? MIN_SHIFT : 32 - Integer.numberOfLeadingZeros(size - 1);
        return shift - MIN_SHIFT;
    }
}
