package org.qimg.nbd.testing;

import java.nio.file.Path;

/** NBD URIs as libnbd and QEMU spell them (nbd_connect_uri, QEMU's nbd+unix:// syntax). */
public final class NbdUris {
    private NbdUris() {
    }

    public static String unix(Path socket) {
        return "nbd+unix:///?socket=" + socket;
    }

    public static String unix(Path socket, String exportName) {
        return "nbd+unix:///" + exportName + "?socket=" + socket;
    }
}
