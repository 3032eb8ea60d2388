package org.qimg.format;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

import org.qimg.ImageException;

import com.github.luben.zstd.ZstdInputStreamNoFinalizer;

/**
 * Decompression of compressed clusters (qcow2.txt, "Compressed clusters"): zlib is a raw deflate
 * stream with no header; zstd is one or more plain frames. Both stop once one cluster is produced:
 * the tail of the last sector may belong to another cluster.
 */
public final class Compression {
    private Compression() {
    }

    /**
     * Compresses one cluster as QEMU does: raw deflate with a 4 KiB window (QEMU inflates with
     * windowBits -12), or a zstd frame. Returns null when the result would not be smaller than
     * {@code limit} bytes, in which case the cluster is better stored as it is.
     */
    public static byte[] compress(int compressionType, byte[] cluster, int limit) throws ImageException {
        byte[] out;
        switch (compressionType) {
            case Qcow2Header.COMPRESSION_ZLIB -> {
                com.jcraft.jzlib.Deflater deflater;
                try {
                    deflater = new com.jcraft.jzlib.Deflater(com.jcraft.jzlib.JZlib.Z_DEFAULT_COMPRESSION, 12, true);
                } catch (com.jcraft.jzlib.GZIPException e) {
                    throw new ImageException("cannot start deflate: " + e.getMessage(), e);
                }
                byte[] buffer = new byte[limit];
                deflater.setInput(cluster);
                deflater.setOutput(buffer);
                int rc = deflater.deflate(com.jcraft.jzlib.JZlib.Z_FINISH);
                int produced = (int) deflater.getTotalOut();
                deflater.end();
                if (rc != com.jcraft.jzlib.JZlib.Z_STREAM_END) {
                    return null; // did not fit in the limit
                }
                out = java.util.Arrays.copyOf(buffer, produced);
            }
            case Qcow2Header.COMPRESSION_ZSTD -> out = com.github.luben.zstd.Zstd.compress(cluster, 3);
            default -> throw new ImageException.Unsupported("unknown compression type " + compressionType);
        }
        return out.length < limit ? out : null;
    }

    public static byte[] decompress(int compressionType, byte[] input, int inputLength, int clusterSize,
                                    String where) throws ImageException {
        return switch (compressionType) {
            case Qcow2Header.COMPRESSION_ZLIB -> inflate(input, inputLength, clusterSize, where);
            case Qcow2Header.COMPRESSION_ZSTD -> unzstd(input, inputLength, clusterSize, where);
            default -> throw new ImageException.Unsupported(where + ": unknown compression type " + compressionType);
        };
    }

    private static byte[] inflate(byte[] input, int inputLength, int clusterSize, String where)
            throws ImageException {
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(input, 0, inputLength);
            byte[] out = new byte[clusterSize];
            int produced = 0;
            while (produced < clusterSize) {
                int n = inflater.inflate(out, produced, clusterSize - produced);
                if (n == 0 && (inflater.finished() || inflater.needsInput() || inflater.needsDictionary())) {
                    throw new ImageException.Corrupt(where + " inflates to " + produced + " bytes, not "
                            + clusterSize);
                }
                produced += n;
            }
            return out;
        } catch (DataFormatException e) {
            throw new ImageException.Corrupt(where + " is not a valid deflate stream: " + e.getMessage(), e);
        } finally {
            inflater.end();
        }
    }

    private static byte[] unzstd(byte[] input, int inputLength, int clusterSize, String where)
            throws ImageException {
        try (InputStream in = new ZstdInputStreamNoFinalizer(new ByteArrayInputStream(input, 0, inputLength))) {
            byte[] out = in.readNBytes(clusterSize);
            if (out.length != clusterSize) {
                throw new ImageException.Corrupt(where + " decompresses to " + out.length + " bytes, not "
                        + clusterSize);
            }
            return out;
        } catch (ImageException e) {
            throw e;
        } catch (IOException e) {
            throw new ImageException.Corrupt(where + " is not a valid zstd stream: " + e.getMessage(), e);
        }
    }
}
