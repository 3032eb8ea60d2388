package org.qimg.map;

import java.io.IOException;

/** What the chain walker needs of one layer: its size, the layer below, and the status of a run. */
public interface LayerMap {

    /** The guest size of this layer in bytes, as QEMU sees it. */
    long size();

    /** The layer below this one, or null. */
    LayerMap backing();

    /** The file that the host offsets of {@link #status} runs refer to. */
    String hostFileName();

    /**
     * The status of the run that starts at {@code guestOffset} ({@code < size()}), at most
     * {@code maxLength} bytes and never past {@link #size()}.
     */
    Run status(long guestOffset, long maxLength) throws IOException;
}
