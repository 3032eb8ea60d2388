package org.qimg.image;

import java.io.IOException;
import java.nio.ByteBuffer;

import org.qimg.host.HostFile;
import org.qimg.map.Run;

/**
 * A raw image: guest offset equals host offset, and the host's own sparse map (lseek SEEK_DATA /
 * SEEK_HOLE) tells data from holes. Its size is the file's, rounded up to 512 bytes as QEMU does;
 * the tail past the file reads as zeroes.
 */
public final class RawLayer implements Layer {
    private final HostFile file;
    private volatile long size;

    RawLayer(HostFile file) {
        this.file = file;
        this.size = (file.size() + 511) & ~511L;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public Layer backing() {
        return null;
    }

    @Override
    public String format() {
        return "raw";
    }

    @Override
    public String name() {
        return file.name();
    }

    @Override
    public String hostFileName() {
        return file.name();
    }

    public HostFile file() {
        return file;
    }

    void refreshSize() {
        size = (file.size() + 511) & ~511L;
    }

    @Override
    public Run status(long guestOffset, long maxLength) throws IOException {
        long end = Math.min(size, guestOffset + maxLength);
        long data = file.seekData(guestOffset);
        if (data < 0) {
            return new Run(end - guestOffset, false, true, guestOffset, false);
        }
        if (data > guestOffset) {
            return new Run(Math.min(end, data) - guestOffset, false, true, guestOffset, false);
        }
        long hole = file.seekHole(guestOffset);
        return new Run(Math.min(end, hole) - guestOffset, true, false, guestOffset, false);
    }

    @Override
    public void readData(long guestOffset, ByteBuffer dst) throws IOException {
        file.read(guestOffset, dst);
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
