package org.qimg.cache;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * A bounded cache of metadata tables (L2 tables, refcount blocks) keyed by their host offset. At most
 * {@code capacity} tables are kept, least recently used first out. A table that is not cached is
 * loaded once even when many threads ask for it at the same moment: the first asks the loader, the
 * others wait for its result.
 */
public final class TableCache<T> {

    /** Loads the table at a host offset. */
    @FunctionalInterface
    public interface Loader<T> {
        T load(long hostOffset) throws IOException;
    }

    private final int capacity;
    private final Loader<T> loader;
    private final LinkedHashMap<Long, CompletableFuture<T>> tables;
    private long loads;

    public TableCache(int capacity, Loader<T> loader) {
        if (capacity < 1) {
            throw new IllegalArgumentException("cache capacity " + capacity + " must be at least 1");
        }
        this.capacity = capacity;
        this.loader = loader;
        this.tables = new LinkedHashMap<>(Math.min(capacity, 1024) * 2, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, CompletableFuture<T>> eldest) {
                return size() > TableCache.this.capacity;
            }
        };
    }

    public T get(long hostOffset) throws IOException {
        CompletableFuture<T> future;
        boolean mine = false;
        synchronized (tables) {
            future = tables.get(hostOffset);
            if (future == null) {
                future = new CompletableFuture<>();
                tables.put(hostOffset, future);
                loads++;
                mine = true;
            }
        }
        if (mine) {
            try {
                T table = loader.load(hostOffset);
                future.complete(table);
                return table;
            } catch (IOException | RuntimeException | Error e) {
                synchronized (tables) {
                    tables.remove(hostOffset, future);
                }
                future.completeExceptionally(e);
                throw e;
            }
        }
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for the table at 0x" + Long.toHexString(hostOffset), e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            if (cause instanceof Error err) {
                throw err;
            }
            throw new UncheckedIOException(new IOException(cause));
        }
    }

    /** Drops the table at {@code hostOffset}, if cached. */
    public void invalidate(long hostOffset) {
        synchronized (tables) {
            tables.remove(hostOffset);
        }
    }

    public int capacity() {
        return capacity;
    }

    /** How many tables are cached now. */
    public int size() {
        synchronized (tables) {
            return tables.size();
        }
    }

    /** How many loads were started since creation (a measure for tests of load-once). */
    public long loads() {
        synchronized (tables) {
            return loads;
        }
    }
}
