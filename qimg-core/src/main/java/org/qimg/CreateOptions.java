package org.qimg;

/**
 * How to create a qcow2 image: the options {@code qemu-img create -f qcow2 -o …} knows, with its
 * defaults. Values are taken as given; {@link org.qimg.image.Qcow2Creator} validates them and names
 * the option at fault.
 *
 * @param size            the virtual size in bytes (rounded up to 512), or {@link #SIZE_OF_BACKING} to
 *                        take the backing image's size
 * @param compat          "0.10" (or "v2") for a version 2 image, "1.1" (or "v3") for version 3
 * @param clusterSize     512 bytes to 2 MiB, a power of two
 * @param extendedL2      32 subclusters per cluster (v3, clusters of 16 KiB or more)
 * @param compressionType "zlib" or "zstd" (v3)
 * @param refcountBits    1, 2, 4, 8, 16, 32 or 64 (v2 needs 16)
 * @param lazyRefcounts   the lazy-refcounts compatible feature (v3)
 * @param backingFile     the backing file name, stored as given; null for none
 * @param backingFormat   the backing format stored in the header extension; required with a backing file
 * @param dataFile        an external data file name, stored as given and created at that name (relative
 *                        to the working directory, as qemu-img does); null for none
 * @param dataFileRaw     the data file is a raw image on its own (implies metadata preallocation)
 * @param preallocation   what to allocate up front
 */
public record CreateOptions(long size, String compat, long clusterSize, boolean extendedL2, String compressionType,
                            int refcountBits, boolean lazyRefcounts, String backingFile, String backingFormat,
                            String dataFile, boolean dataFileRaw, Preallocation preallocation) {

    /** The size to use when the image takes its size from its backing image. */
    public static final long SIZE_OF_BACKING = -1;
    public static final long DEFAULT_CLUSTER_SIZE = 64 << 10;

    /** qemu-img's preallocation modes. */
    public enum Preallocation {
        /** Only the header, refcount structures and the L1 table. */
        OFF,
        /** L2 tables and data clusters are allocated; the file is extended sparsely. */
        METADATA,
        /** As metadata, and the data clusters get disk space with posix_fallocate. */
        FALLOC,
        /** As metadata, and the data clusters are written with zeroes. */
        FULL;

        /** The mode qemu-img calls {@code name} ("off", "metadata", "falloc", "full"). */
        public static Preallocation parse(String name) throws ImageException {
            for (Preallocation p : values()) {
                if (p.qemuName().equals(name)) {
                    return p;
                }
            }
            throw new ImageException("Parameter 'preallocation' does not accept value '" + name + "'");
        }

        public String qemuName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public CreateOptions {
        if (preallocation == null) {
            throw new IllegalArgumentException("preallocation must not be null (use OFF)");
        }
    }

    /** qemu-img's defaults: compat 1.1, 64 KiB clusters, zlib, 16-bit refcounts, no preallocation. */
    public static CreateOptions ofSize(long size) {
        return new CreateOptions(size, "1.1", DEFAULT_CLUSTER_SIZE, false, "zlib", 16, false, null, null, null, false,
                Preallocation.OFF);
    }

    /** An overlay taking its size from {@code backingFile}, whose format is {@code backingFormat}. */
    public static CreateOptions overlay(String backingFile, String backingFormat) {
        return ofSize(SIZE_OF_BACKING).withBacking(backingFile, backingFormat);
    }

    /** The qcow2 version the compat level asks for: 2, 3, or -1 when it is not one qemu knows. */
    public int version() {
        return switch (compat == null ? "1.1" : compat) {
            case "0.10", "v2" -> 2;
            case "1.1", "v3" -> 3;
            default -> -1;
        };
    }

    public CreateOptions withSize(long newSize) {
        return new CreateOptions(newSize, compat, clusterSize, extendedL2, compressionType, refcountBits,
                lazyRefcounts, backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withCompat(String newCompat) {
        return new CreateOptions(size, newCompat, clusterSize, extendedL2, compressionType, refcountBits,
                lazyRefcounts, backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withClusterSize(long newClusterSize) {
        return new CreateOptions(size, compat, newClusterSize, extendedL2, compressionType, refcountBits,
                lazyRefcounts, backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withExtendedL2(boolean on) {
        return new CreateOptions(size, compat, clusterSize, on, compressionType, refcountBits, lazyRefcounts,
                backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withCompressionType(String type) {
        return new CreateOptions(size, compat, clusterSize, extendedL2, type, refcountBits, lazyRefcounts,
                backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withRefcountBits(int bits) {
        return new CreateOptions(size, compat, clusterSize, extendedL2, compressionType, bits, lazyRefcounts,
                backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withLazyRefcounts(boolean on) {
        return new CreateOptions(size, compat, clusterSize, extendedL2, compressionType, refcountBits, on,
                backingFile, backingFormat, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withBacking(String file, String format) {
        return new CreateOptions(size, compat, clusterSize, extendedL2, compressionType, refcountBits,
                lazyRefcounts, file, format, dataFile, dataFileRaw, preallocation);
    }

    public CreateOptions withDataFile(String file, boolean raw) {
        return new CreateOptions(size, compat, clusterSize, extendedL2, compressionType, refcountBits,
                lazyRefcounts, backingFile, backingFormat, file, raw, preallocation);
    }

    public CreateOptions withPreallocation(Preallocation mode) {
        return new CreateOptions(size, compat, clusterSize, extendedL2, compressionType, refcountBits,
                lazyRefcounts, backingFile, backingFormat, dataFile, dataFileRaw, mode);
    }
}
