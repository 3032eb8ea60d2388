package org.qimg;

import java.io.IOException;

import org.qimg.image.ChainDevice;
import org.qimg.image.ChainOpener;

/** Entry point of the library: opens images with their backing chains. */
public final class Images {
    private Images() {
    }

    /** Opens {@code name} (format probed) and its whole backing chain, read-only. */
    public static BlockDevice open(String name) throws IOException {
        return open(name, OpenOptions.defaults());
    }

    public static BlockDevice open(String name, OpenOptions options) throws IOException {
        org.qimg.image.Layer top = ChainOpener.open(name, options);
        try {
            return new ChainDevice(top);
        } catch (IOException | RuntimeException e) {
            for (org.qimg.image.Layer l = top; l != null; l = l.backing()) {
                try {
                    l.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /**
     * Creates the qcow2 image {@code name} as {@code qemu-img create -f qcow2} does (overwriting a file
     * that is there); see {@link CreateOptions} for the options and their defaults.
     */
    public static void create(String name, CreateOptions options) throws IOException {
        org.qimg.image.Qcow2Creator.create(java.nio.file.Path.of(name), options);
    }

    /**
     * Checks the qcow2 image {@code name} as {@code qemu-img check [-r leaks|all]} does; QEMU's messages
     * about what it finds go to {@code messages}.
     *
     * @throws ImageException when the check cannot complete ("Check failed: …") or the image cannot be opened
     */
    public static CheckResult check(String name, CheckResult.Repair repair,
                                    java.util.function.Consumer<String> messages) throws IOException {
        return org.qimg.image.Qcow2Checker.check(java.nio.file.Path.of(name), repair, messages);
    }

    /** Opens {@code name} (format probed) for writing; its backing images stay read-only. */
    public static BlockDevice openWritable(String name) throws IOException {
        return open(name, OpenOptions.defaults().writable());
    }
}
