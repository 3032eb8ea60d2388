package org.qimg.image;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

import org.qimg.map.LayerMap;

/**
 * One image of a backing chain, qcow2 or raw. A layer answers for its own bytes only: the chain
 * decides what unallocated runs read as.
 */
public sealed interface Layer extends LayerMap, Closeable permits Qcow2Layer, RawLayer {

    /** The image below this one, or null. */
    @Override
    Layer backing();

    /** The format name, as qemu-img prints it ("qcow2", "raw"). */
    String format();

    /** The file name as given (or as the overlay's backing field resolves it). */
    String name();

    /**
     * Reads {@code dst.remaining()} bytes at {@code guestOffset} from a range that {@link #status}
     * reported as data of this layer.
     */
    void readData(long guestOffset, ByteBuffer dst) throws IOException;
}
