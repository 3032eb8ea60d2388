package org.qimg.nbd;

import java.io.Closeable;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An NBD server (fixed newstyle, proto.md) for one {@link Export}, listening on a Unix socket or a
 * TCP address; one virtual thread per connection. The server never closes the export's device.
 *
 * <p>Without {@link Settings#persistent()} the server ends when its last client leaves, as qemu-nbd
 * does; {@link Settings#maxClients()} clients are served at once (0: no limit), further ones wait in
 * the listen queue.
 */
public final class NbdServer implements Closeable {
    private static final System.Logger LOG = System.getLogger(NbdServer.class.getName());
    /** How long {@link #close()} lets requests in flight finish before it drops connections. */
    private static final Duration CLOSE_GRACE = Duration.ofSeconds(10);
    private static final int UNIX_SEND_BUFFER = 2 << 20;

    /**
     * @param persistent     keep serving after the last client leaves (qemu-nbd's {@code -t})
     * @param maxClients     clients served at once, 0 for no limit (qemu-nbd's {@code -e})
     * @param handshakeLimit a client that has not finished option haggling by then is dropped
     */
    public record Settings(boolean persistent, int maxClients, Duration handshakeLimit) {
        public Settings {
            if (maxClients < 0) {
                throw new IllegalArgumentException("maximum number of clients " + maxClients + " is negative");
            }
            Objects.requireNonNull(handshakeLimit, "handshakeLimit");
        }

        /** qemu-nbd's defaults: one client, then exit; a 10 s handshake limit. */
        public static Settings defaults() {
            return new Settings(false, 1, Duration.ofSeconds(10));
        }

        public Settings withPersistent(boolean on) {
            return new Settings(on, maxClients, handshakeLimit);
        }

        public Settings withMaxClients(int max) {
            return new Settings(persistent, max, handshakeLimit);
        }

        public Settings withHandshakeLimit(Duration limit) {
            return new Settings(persistent, maxClients, limit);
        }
    }

    private final ServerSocketChannel listener;
    private final SocketAddress address;
    private final Path socketFile;
    private final Export export;
    private final Settings settings;
    private final Semaphore clientSlots;
    private final Set<Connection> connections = ConcurrentHashMap.newKeySet();
    private final AtomicLong connectionCount = new AtomicLong();
    private final AtomicBoolean closing = new AtomicBoolean();
    private final CountDownLatch terminated = new CountDownLatch(1);
    private final Object idle = new Object();

    private NbdServer(ServerSocketChannel listener, SocketAddress address, Path socketFile, Export export,
                      Settings settings) {
        this.listener = listener;
        this.address = address;
        this.socketFile = socketFile;
        this.export = export;
        this.settings = settings;
        this.clientSlots = settings.maxClients() == 0 ? null : new Semaphore(settings.maxClients());
    }

    /**
     * Binds {@code address} (a {@link UnixDomainSocketAddress} or an {@link InetSocketAddress}) and
     * starts accepting clients. A stale Unix socket file at the path is replaced; any other file there
     * is an error.
     */
    public static NbdServer start(SocketAddress address, Export export, Settings settings) throws IOException {
        Objects.requireNonNull(export, "export");
        ServerSocketChannel listener;
        Path socketFile = null;
        if (address instanceof UnixDomainSocketAddress unix) {
            socketFile = unix.getPath();
            removeStaleSocket(socketFile);
            listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        } else if (address instanceof InetSocketAddress) {
            listener = ServerSocketChannel.open();
            listener.setOption(StandardSocketOptions.SO_REUSEADDR, true);
        } else {
            throw new IllegalArgumentException("cannot listen on " + address);
        }
        try {
            listener.bind(address);
        } catch (IOException e) {
            listener.close();
            throw new IOException("cannot listen on " + address + ": " + e.getMessage(), e);
        }
        NbdServer server = new NbdServer(listener, listener.getLocalAddress(), socketFile, export, settings);
        Thread.ofVirtual().name("nbd-accept").start(server::acceptLoop);
        return server;
    }

    private static void removeStaleSocket(Path path) throws IOException {
        if (!Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Object mode = Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        if (!(mode instanceof Integer bits) || (bits & 0170000) != 0140000) {
            throw new FileAlreadyExistsException(path.toString(), null, "exists and is not a socket");
        }
        Files.delete(path);
    }

    /** The address clients connect to (with the actual port when port 0 was asked for). */
    public SocketAddress address() {
        return address;
    }

    public Export export() {
        return export;
    }

    /** Waits until the server has ended: closed, or (not persistent) its last client gone. */
    public void awaitTermination() throws InterruptedException {
        terminated.await();
    }

    public boolean awaitTermination(Duration timeout) throws InterruptedException {
        return terminated.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    private void acceptLoop() {
        while (!closing.get()) {
            try {
                if (clientSlots != null && !clientSlots.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    continue;
                }
            } catch (InterruptedException e) {
                return;
            }
            SocketChannel channel;
            try {
                channel = listener.accept();
            } catch (IOException e) {
                releaseSlot();
                if (closing.get() || !listener.isOpen()) {
                    return;
                }
                LOG.log(Level.WARNING, "accept on " + address + " failed: " + e);
                sleepQuietly(100); // e.g. out of file descriptors: do not spin
                continue;
            }
            if (isInet(channel)) {
                setNoDelay(channel); // replies are small messages: do not let Nagle hold them back
            } else {
                growSendBuffer(channel);
            }
            String name = "nbd-client-" + connectionCount.incrementAndGet();
            Connection[] self = new Connection[1];
            Connection connection = new Connection(channel, export, settings.handshakeLimit(), name,
                    () -> ended(self[0]));
            self[0] = connection;
            connections.add(connection);
            if (closing.get()) {
                connection.stop();
            }
            Thread.ofVirtual().name(name).start(connection);
        }
    }

    private static boolean isInet(SocketChannel channel) {
        try {
            return channel.getLocalAddress() instanceof InetSocketAddress;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * A Unix socket's send buffer defaults to about 200 KiB, less than one read reply of nbdcopy's
     * or QEMU's usual request sizes: every such reply would park its thread mid-write until the
     * client drains the socket, with the connection's reply lock held. 2 MiB (the kernel caps it at
     * net.core.wmem_max) lets a reply leave in one write. TCP tunes its own buffers.
     */
    private static void growSendBuffer(SocketChannel channel) {
        try {
            channel.setOption(StandardSocketOptions.SO_SNDBUF, UNIX_SEND_BUFFER);
        } catch (IOException | UnsupportedOperationException e) {
            LOG.log(Level.DEBUG, () -> "SO_SNDBUF: " + e);
        }
    }

    private static void setNoDelay(SocketChannel channel) {
        try {
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> "TCP_NODELAY: " + e);
        }
    }

    private void releaseSlot() {
        if (clientSlots != null) {
            clientSlots.release();
        }
    }

    private void ended(Connection connection) {
        connections.remove(connection);
        releaseSlot();
        synchronized (idle) {
            idle.notifyAll();
        }
        if (!settings.persistent() && connections.isEmpty() && !closing.get()) {
            Thread.ofVirtual().name("nbd-close").start(this::close);
        }
    }

    /**
     * Stops accepting, lets each connection finish the requests it has in flight (up to a grace
     * period, then drops it), and removes the Unix socket file. Idempotent; the device stays open.
     */
    @Override
    public void close() {
        if (!closing.compareAndSet(false, true)) {
            try {
                terminated.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return;
        }
        try {
            listener.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> "closing the listener: " + e);
        }
        connections.forEach(Connection::stop);
        if (!waitIdle(CLOSE_GRACE)) {
            connections.forEach(Connection::abort);
            waitIdle(Duration.ofSeconds(2));
        }
        if (socketFile != null) {
            try {
                Files.deleteIfExists(socketFile);
            } catch (IOException e) {
                LOG.log(Level.DEBUG, () -> "removing " + socketFile + ": " + e);
            }
        }
        terminated.countDown();
    }

    private boolean waitIdle(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (idle) {
            while (!connections.isEmpty()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(idle, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
        }
        return true;
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
