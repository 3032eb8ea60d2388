package org.qimg.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

class TableCacheTest {
    @Test
    void aTableAskedForByManyThreadsAtOnceLoadsOnce() throws Exception {
        AtomicInteger loads = new AtomicInteger();
        CountDownLatch release = new CountDownLatch(1);
        TableCache<String> cache = new TableCache<>(4, offset -> {
            loads.incrementAndGet();
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            return "table@" + offset;
        });
        List<Future<String>> results = new ArrayList<>();
        try (var executor = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < 64; i++) {
                results.add(executor.submit(() -> cache.get(0x30000)));
            }
            Thread.sleep(50);
            release.countDown();
            for (Future<String> f : results) {
                assertThat(f.get()).isEqualTo("table@196608");
            }
        }
        assertThat(loads).hasValue(1);
    }

    @Test
    void boundedLeastRecentlyUsedFirstOut() throws IOException {
        AtomicInteger loads = new AtomicInteger();
        TableCache<Long> cache = new TableCache<>(2, offset -> {
            loads.incrementAndGet();
            return offset;
        });
        cache.get(1);
        cache.get(2);
        cache.get(1);
        cache.get(3); // evicts 2
        assertThat(cache.size()).isEqualTo(2);
        cache.get(1);
        assertThat(loads).hasValue(3);
        cache.get(2);
        assertThat(loads).hasValue(4);
    }

    @Test
    void aFailedLoadIsNotCached() throws IOException {
        AtomicInteger loads = new AtomicInteger();
        TableCache<Long> cache = new TableCache<>(2, offset -> {
            if (loads.incrementAndGet() == 1) {
                throw new IOException("disk error");
            }
            return offset;
        });
        assertThatThrownBy(() -> cache.get(7)).hasMessage("disk error");
        assertThat(cache.get(7)).isEqualTo(7);
    }
}
