package org.qimg.nbd;

import java.io.IOException;

/**
 * The client broke a mandatory rule of the protocol (a wrong magic, an unknown client flag, a
 * payload too large to accept): the server drops that connection, and only that one.
 */
final class ProtocolViolation extends IOException {
    private static final long serialVersionUID = 1L;

    ProtocolViolation(String message) {
        super(message);
    }
}
