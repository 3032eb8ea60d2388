package org.qimg;

/**
 * The outcome of a consistency check, with qemu-img check's fields. After a repair the counts are
 * those of the second check qemu-img runs on the repaired image, and the {@code *Fixed} counts say
 * what the repair did.
 *
 * @param checkErrors        internal errors: refcounts that could not be read, so the check is incomplete
 * @param corruptions        refcounts lower than the references, and structural errors
 * @param leaks              clusters whose refcount is higher than the references
 * @param corruptionsFixed   corruptions a repair fixed
 * @param leaksFixed         leaks a repair fixed
 * @param imageEndOffset     the end of the last cluster in use or referenced
 * @param totalClusters      clusters of the virtual disk
 * @param allocatedClusters  guest clusters the active L1 table maps to host clusters
 * @param fragmentedClusters allocated clusters not right after the previous one of the same L2 table
 * @param compressedClusters compressed clusters
 */
public record CheckResult(long checkErrors, long corruptions, long leaks, long corruptionsFixed, long leaksFixed,
                          long imageEndOffset, long totalClusters, long allocatedClusters, long fragmentedClusters,
                          long compressedClusters) {

    /** How much a check repairs: qemu-img check's {@code -r leaks} and {@code -r all}. */
    public enum Repair {
        NONE, LEAKS, ALL;

        public boolean leaks() {
            return this != NONE;
        }

        public boolean errors() {
            return this == ALL;
        }
    }

    /** Whether a repair changed anything (qemu-img then checks the image again). */
    public boolean repaired() {
        return corruptionsFixed != 0 || leaksFixed != 0;
    }

    /** qemu-img check's exit code for a finished check: 0 clean, 1 incomplete, 2 corrupt, 3 leaks only. */
    public int exitCode() {
        if (checkErrors != 0) {
            return 1;
        }
        return corruptions != 0 ? 2 : leaks != 0 ? 3 : 0;
    }
}
