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
