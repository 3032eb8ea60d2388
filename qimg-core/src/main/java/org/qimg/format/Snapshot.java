package org.qimg.format;

/**
 * One entry of the internal snapshot table (qcow2.txt, "Snapshots").
 *
 * @param l1TableOffset where the snapshot's L1 table starts in the image file
 * @param l1Size        number of entries of that L1 table
 * @param id            the unique ID string
 * @param name          the name (tag)
 * @param dateSeconds   wall-clock time the snapshot was taken, seconds since the epoch
 * @param dateNanos     the sub-second part of that time
 * @param vmClockNanos  guest clock at the time of the snapshot
 * @param vmStateSize   bytes of saved VM state (the 64-bit extra field when present)
 * @param diskSize      virtual disk size at the time of the snapshot, or -1 when not recorded
 * @param icount        record/replay instruction count, or -1 when not recorded or disabled
 */
public record Snapshot(long l1TableOffset, int l1Size, String id, String name, long dateSeconds, long dateNanos,
                       long vmClockNanos, long vmStateSize, long diskSize, long icount) {
}
