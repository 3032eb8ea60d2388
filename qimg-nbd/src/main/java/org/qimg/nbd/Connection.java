package org.qimg.nbd;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.channels.SocketChannel;
import java.time.Duration;

/**
 * One client, from greeting to close, on its own virtual thread: option haggling, then transmission.
 * Whatever the client does wrong ends this connection only.
 */
final class Connection implements Runnable {
    private static final System.Logger LOG = System.getLogger(Connection.class.getName());

    private final SocketChannel channel;
    private final Export export;
    private final Duration handshakeLimit;
    private final Runnable onEnd;
    private final String name;
    private volatile boolean negotiated;

    Connection(SocketChannel channel, Export export, Duration handshakeLimit, String name, Runnable onEnd) {
        this.channel = channel;
        this.export = export;
        this.handshakeLimit = handshakeLimit;
        this.name = name;
        this.onEnd = onEnd;
    }

    @Override
    public void run() {
        // A client that never finishes the handshake would hold its place (and a -e slot) forever.
        Thread watchdog = Thread.ofVirtual().name(name + "-handshake-limit").start(() -> {
            try {
                Thread.sleep(handshakeLimit);
                if (!negotiated) {
                    LOG.log(Level.DEBUG, () -> name + ": handshake not done after " + handshakeLimit + ", dropped");
                    abort();
                }
            } catch (InterruptedException e) {
                // the handshake ended in time
            }
        });
        try {
            WireInput in = new WireInput(channel);
            Session session;
            try {
                session = new Handshake(in, channel, export).negotiate();
            } finally {
                negotiated = true;
                watchdog.interrupt();
            }
            if (session != null) {
                new Transmission(in, new ReplyWriter(channel), session, this).run();
            }
        } catch (ProtocolViolation e) {
            LOG.log(Level.DEBUG, () -> name + ": protocol violation, connection dropped: " + e.getMessage());
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> name + ": connection ended: " + e);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, name + ": connection failed", e);
        } finally {
            abort();
            onEnd.run();
        }
    }

    /** Asks the connection to end: no more requests are read; those in flight still get replies. */
    void stop() {
        try {
            channel.shutdownInput();
        } catch (IOException e) {
            abort();
        }
    }

    /** Hard disconnect. */
    void abort() {
        try {
            channel.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> name + ": close failed: " + e);
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
