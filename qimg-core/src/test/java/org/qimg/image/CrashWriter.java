package org.qimg.image;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;

import org.qimg.BlockDevice;
import org.qimg.Images;

/**
 * The child process of {@link CrashTest}: runs a seeded random workload on an image and prints
 * "F n" after each flush that made operations 0..n durable. It is killed at a random moment.
 */
public final class CrashWriter {
    /** One operation of the workload: 0 write, 1 write zeroes, 2 discard; ranges in 4 KiB blocks. */
    record Op(int kind, long offset, int length, byte pattern) {
    }

    static Op op(Random random, long size) {
        int kind = random.nextInt(10) < 7 ? 0 : random.nextInt(10) < 5 ? 1 : 2;
        int blocks = 1 + random.nextInt(random.nextBoolean() ? 4 : 48);
        long offset = (long) random.nextInt((int) (size / 4096 - blocks)) * 4096;
        return new Op(kind, offset, blocks * 4096, (byte) (1 + random.nextInt(255)));
    }

    public static void main(String[] args) throws IOException {
        String image = args[0];
        long seed = Long.parseLong(args[1]);
        int ops = Integer.parseInt(args[2]);
        PrintStream out = new PrintStream(System.out, true);
        Random random = new Random(seed);
        try (BlockDevice device = Images.openWritable(image)) {
            long size = device.size();
            for (int i = 0; i < ops; i++) {
                Op op = op(random, size);
                switch (op.kind()) {
                    case 0 -> {
                        byte[] data = new byte[op.length()];
                        Arrays.fill(data, op.pattern());
                        device.write(op.offset(), ByteBuffer.wrap(data));
                    }
                    case 1 -> device.writeZeroes(op.offset(), op.length(), (op.pattern() & 1) == 0);
                    default -> device.discard(op.offset(), op.length());
                }
                if (i % 8 == 7) {
                    device.flush();
                    out.println("F " + i);
                }
            }
        }
        out.println("DONE");
    }
}
