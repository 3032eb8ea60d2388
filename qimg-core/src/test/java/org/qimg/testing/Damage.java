package org.qimg.testing;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

import org.qimg.format.L2Entry;
import org.qimg.format.Qcow2Header;
import org.qimg.format.RefcountBlock;

/** Damages qcow2 images on purpose, the way crashes and bugs do, for checker tests. */
public final class Damage {
    private Damage() {
    }

    public static Qcow2Header header(Path image) throws IOException {
        byte[] head = new byte[(int) Math.min(Files.size(image), 2 << 20)];
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.readFully(head);
        }
        return Qcow2Header.parse(ByteBuffer.wrap(head), Files.size(image), image.toString());
    }

    /**
     * The host offset of the first L2 entry of the active L1 table that maps a data cluster used once
     * (its COPIED flag set), so that it is in no snapshot.
     */
    public static long firstDataEntry(Path image) throws IOException {
        Qcow2Header h = header(image);
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            for (int i = 0; i < h.l1Size(); i++) {
                f.seek(h.l1TableOffset() + 8L * i);
                long l2 = L2Entry.l2TableOffset(f.readLong());
                if (l2 == 0) {
                    continue;
                }
                for (int j = 0; j < h.clusterSize() / h.l2EntryBytes(); j++) {
                    long at = l2 + (long) j * h.l2EntryBytes();
                    f.seek(at);
                    long entry = f.readLong();
                    if ((entry & L2Entry.COMPRESSED_FLAG) == 0 && (entry & L2Entry.COPIED) != 0
                            && L2Entry.hostClusterOffset(entry) != 0) {
                        return at;
                    }
                }
            }
        }
        throw new AssertionError("no data cluster in " + image);
    }

    public static long readLong(Path image, long hostOffset) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.seek(hostOffset);
            return f.readLong();
        }
    }

    public static void writeLong(Path image, long hostOffset, long value) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(hostOffset);
            f.writeLong(value);
        }
    }

    /**
     * Leaks a data cluster: clears the L2 entry that maps it, and its subcluster bitmap (its refcount
     * stays 1). Returns the cluster's host offset.
     */
    public static long leakDataCluster(Path image) throws IOException {
        long at = firstDataEntry(image);
        long host = L2Entry.hostClusterOffset(readLong(image, at));
        writeLong(image, at, 0);
        if (header(image).extendedL2()) {
            writeLong(image, at + 8, 0);
        }
        return host;
    }

    /** The host offset of the data cluster the first data L2 entry maps. */
    public static long firstDataCluster(Path image) throws IOException {
        return L2Entry.hostClusterOffset(readLong(image, firstDataEntry(image)));
    }

    /** Overwrites the stored refcount of the host cluster at {@code hostOffset}. */
    public static void setRefcount(Path image, long hostOffset, long value) throws IOException {
        Qcow2Header h = header(image);
        long cluster = hostOffset >>> h.clusterBits();
        int blockBits = h.clusterBits() + 3 - h.refcountOrder();
        long tableIndex = cluster >>> blockBits;
        long block = readLong(image, h.refcountTableOffset() + 8 * tableIndex) & ~0x1FFL;
        if (block == 0) {
            throw new AssertionError("no refcount block for cluster " + cluster);
        }
        byte[] raw = new byte[(int) h.clusterSize()];
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(block);
            f.readFully(raw);
            RefcountBlock.set(MemorySegment.ofArray(raw), (int) (cluster & ((1L << blockBits) - 1)), h.refcountOrder(),
                    value);
            f.seek(block);
            f.write(raw);
        }
    }
}
