package org.qimg.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qimg.CheckResult;
import org.qimg.CheckResult.Repair;
import org.qimg.ImageException;
import org.qimg.format.L2Entry;
import org.qimg.format.Qcow2Header;
import org.qimg.format.RefcountBlock;
import org.qimg.host.HostFile;
import org.qimg.testing.Corpus;
import org.qimg.testing.Damage;
import org.qimg.testing.QemuCheck;

/**
 * Differential test: random damage to the metadata of corpus images (L1 and L2 entries, refcount
 * table entries, refcounts), then qimg check and qemu-img check, without and with repairs, must say
 * the same thing: exit code, counts, messages — and leave the same file after a repair.
 */
class CheckFuzzTest {
    private static final List<String> IMAGES = List.of("v3-64k-mixed", "v3-512b", "ext-64k", "compressed-zlib",
            "refcount1", "refcount64", "snapshots", "v2-64k", "bitmaps", "ext-16k");

    @TempDir
    Path dir;

    static IntStream seeds() {
        return IntStream.range(0, Integer.getInteger("fuzz.seeds", 60));
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void qimgAndQemuImgAgreeOnDamagedMetadata(int seed) throws IOException {
        Random random = new Random(seed * 7919L + 17);
        String name = IMAGES.get(random.nextInt(IMAGES.size()));
        Path original = dir.resolve("orig.qcow2");
        Files.copy(Corpus.get().image(name).path(), original);
        String damage = damage(original, random);
        String what = name + ": " + damage;

        Path ours = dir.resolve("ours.qcow2");
        Path theirs = dir.resolve("theirs.qcow2");
        for (Repair repair : Repair.values()) {
            Files.copy(original, ours, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            Files.copy(original, theirs, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            String[] flag = switch (repair) {
                case NONE -> new String[0];
                case LEAKS -> new String[] {"-r", "leaks"};
                case ALL -> new String[] {"-r", "all"};
            };
            QemuCheck.Outcome qemu = QemuCheck.run(theirs, flag);
            List<String> messages = new ArrayList<>();
            CheckResult result = null;
            Throwable failure = catchThrowable(() -> messagesInto(messages, ours, repair));
            if (failure == null) {
                result = lastResult;
            }
            String context = what + ", repair " + repair + "\nqemu: " + qemu.stdout() + qemu.stderr()
                    + "\nqimg: " + (failure == null ? result : failure.getMessage()) + " " + messages;
            if (qemu.result() == null) {
                assertThat(failure).as(context).isInstanceOf(ImageException.class);
                String qemuError = qemu.stderr().lines().filter(l -> l.startsWith("qemu-img: Check failed"))
                        .findFirst().orElse("");
                // QEMU stores bitmaps when it closes an image opened for writing, with messages of its own.
                if (!qemuError.isEmpty() && (repair == Repair.NONE || !name.equals("bitmaps"))) {
                    assertThat("qemu-img: " + failure.getMessage()).as(context).isEqualTo(qemuError);
                    assertThat(messages).as(context)
                            .isEqualTo(qemu.stderr().lines().filter(l -> !l.startsWith("qemu-img: ")).toList());
                }
                continue;
            }
            assertThat(failure).as(context).isNull();
            assertThat(result).as(context).isEqualTo(qemu.result());
            assertThat(result.exitCode()).as(context).isEqualTo(qemu.exitCode());
            assertThat(messages).as(context).isEqualTo(qemu.stderr().lines().filter(l -> !l.startsWith("qemu-img: ")).toList());
            // QEMU rewrites the bitmap directory whenever it opens an image with bitmaps for writing.
            if (repair != Repair.NONE && !name.equals("bitmaps")) {
                assertThat(firstDifference(ours, theirs)).as(context + "\nrepaired files differ at").isEqualTo(-1);
            }
        }
    }

    private CheckResult lastResult;

    /**
     * Where two files first differ, or -1; a repair may grow a file sparsely to terabytes, so only the
     * ranges where either file has data are read.
     */
    private static long firstDifference(Path a, Path b) throws IOException {
        long size = Files.size(a);
        if (size != Files.size(b)) {
            return Math.min(size, Files.size(b));
        }
        try (HostFile fa = HostFile.openReadOnly(a, "a"); HostFile fb = HostFile.openReadOnly(b, "b")) {
            long at = 0;
            while (at < size) {
                long da = fa.seekData(at);
                long db = fb.seekData(at);
                long next = Math.min(da < 0 ? size : da, db < 0 ? size : db);
                if (next >= size) {
                    return -1;
                }
                long end = Math.min(size, next + (1 << 20));
                java.nio.ByteBuffer x = java.nio.ByteBuffer.allocate((int) (end - next));
                java.nio.ByteBuffer y = java.nio.ByteBuffer.allocate((int) (end - next));
                fa.read(next, x);
                fb.read(next, y);
                int m = x.flip().mismatch(y.flip());
                if (m >= 0) {
                    return next + m;
                }
                at = end;
            }
            return -1;
        }
    }

    private void messagesInto(List<String> messages, Path image, Repair repair) throws IOException {
        lastResult = Qcow2Checker.check(image, repair, messages::add);
    }

    /** Breaks one piece of metadata; returns what it did. */
    private static String damage(Path image, Random random) throws IOException {
        Qcow2Header h = Damage.header(image);
        long cs = h.clusterSize();
        long fileSize = Files.size(image);
        List<Long> l1Entries = new ArrayList<>();
        List<Long> l2Entries = new ArrayList<>();
        for (int i = 0; i < h.l1Size(); i++) {
            long at = h.l1TableOffset() + 8L * i;
            long l1 = Damage.readLong(image, at);
            if (l1 != 0) {
                l1Entries.add(at);
                long l2 = L2Entry.l2TableOffset(l1);
                for (long j = 0; j < cs / h.l2EntryBytes(); j++) {
                    long e = l2 + j * h.l2EntryBytes();
                    if (Damage.readLong(image, e) != 0) {
                        l2Entries.add(e);
                    }
                }
            }
        }
        List<Long> reftableEntries = new ArrayList<>();
        for (long i = 0; i < h.refcountTableClusters() * cs / 8; i++) {
            long at = h.refcountTableOffset() + 8 * i;
            if (Damage.readLong(image, at) != 0) {
                reftableEntries.add(at);
            }
        }
        int target = random.nextInt(10);
        if (target < 3 && !l2Entries.isEmpty()) {
            return "L2 entry " + mutate(image, pick(l2Entries, random), random, cs, fileSize);
        }
        if (target < 5 && !l1Entries.isEmpty()) {
            return "L1 entry " + mutate(image, pick(l1Entries, random), random, cs, fileSize);
        }
        if (target < 6) {
            return "refcount table entry " + mutate(image, pick(reftableEntries, random), random, cs, fileSize);
        }
        long cluster = random.nextInt((int) Math.ceilDiv(fileSize, cs) + 2);
        long value = switch (random.nextInt(4)) {
            case 0 -> 0;
            case 1 -> Math.min(2, RefcountBlock.maxValue(h.refcountOrder()));
            case 2 -> RefcountBlock.maxValue(h.refcountOrder());
            default -> random.nextLong() & RefcountBlock.maxValue(h.refcountOrder());
        };
        try {
            Damage.setRefcount(image, cluster * cs, value);
        } catch (AssertionError noBlock) {
            return "nothing (no refcount block for cluster " + cluster + ")";
        }
        return "refcount of cluster " + cluster + " := " + Long.toUnsignedString(value);
    }

    private static long pick(List<Long> list, Random random) {
        return list.get(random.nextInt(list.size()));
    }

    private static String mutate(Path image, long at, Random random, long cs, long fileSize) throws IOException {
        long old = Damage.readLong(image, at);
        long offsetMask = 0x00FF_FFFF_FFFF_FE00L;
        long value = switch (random.nextInt(9)) {
            case 0 -> old ^ L2Entry.COPIED;
            case 1 -> old | (1L << (1 + random.nextInt(8)));
            case 2 -> old | (1L << (56 + random.nextInt(6)));
            case 3 -> old + 512;
            case 4 -> (old & ~offsetMask) | (((fileSize + cs - 1) / cs + random.nextInt(3)) * cs);
            case 5 -> (old & ~offsetMask) | (random.nextInt(4) * cs);
            case 6 -> 0;
            case 7 -> old ^ L2Entry.ZERO_FLAG;
            default -> old ^ (1L << random.nextInt(64));
        };
        Damage.writeLong(image, at, value);
        return "at 0x" + Long.toHexString(at) + ": 0x" + Long.toHexString(old) + " -> 0x" + Long.toHexString(value);
    }
}
