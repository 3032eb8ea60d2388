package org.qimg.testing;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the real tools (qemu-img, qemu-io, nbdinfo, …) from tests. A missing tool or a failing
 * command fails the test: CI must install them, never skip.
 */
public final class Tools {
    private Tools() {
    }

    /** The result of a finished command. */
    public record Result(int exitCode, String stdout, String stderr) {
    }

    /** Runs {@code command} in {@code dir} (may be null) with a time limit; returns whatever it exits with. */
    public static Result exec(Path dir, List<String> command) {
        ProcessBuilder pb = new ProcessBuilder(command);
        if (dir != null) {
            pb.directory(dir.toFile());
        }
        pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new AssertionError("cannot run " + command.get(0) + " (is it installed? .ci/run installs it): "
                    + e.getMessage(), e);
        }
        try {
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            Thread errPump = Thread.ofVirtual().start(() -> pump(p.getErrorStream(), err));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            pump(p.getInputStream(), out);
            if (!p.waitFor(300, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("timed out: " + String.join(" ", command));
            }
            errPump.join();
            return new Result(p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted: " + String.join(" ", command), e);
        }
    }

    private static void pump(InputStream in, ByteArrayOutputStream out) {
        try (in) {
            in.transferTo(out);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Runs {@code command} and returns its standard output; fails the test on a non-zero exit. */
    public static String run(Path dir, String... command) {
        Result r = exec(dir, List.of(command));
        if (r.exitCode() != 0) {
            throw new AssertionError(String.join(" ", command) + " exited " + r.exitCode() + ": " + r.stderr()
                    + r.stdout());
        }
        return r.stdout();
    }

    public static String run(String... command) {
        return run(null, command);
    }

    /**
     * Makes {@code image}, a qcow2 image of {@code size} (qemu-img's syntax), with qemu-img create,
     * then runs each of {@code ioCommands} on it with qemu-io; returns the image.
     */
    public static Path qcow2(Path image, String size, String... ioCommands) {
        run("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), size);
        if (ioCommands.length > 0) {
            List<String> io = new java.util.ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
            for (String c : ioCommands) {
                io.add("-c");
                io.add(c);
            }
            io.add(image.toString());
            run(io.toArray(String[]::new));
        }
        return image;
    }

    /** A process that holds an image open, with QEMU's locks, until closed. */
    public static final class Holder implements AutoCloseable {
        private final Process process;

        private Holder(Process process) {
            this.process = process;
        }

        @Override
        public void close() throws InterruptedException {
            process.destroyForcibly().waitFor();
        }
    }

    /**
     * Starts qemu-io on {@code image} (opened for writing: it takes the "write" lock and denies it to
     * others) and returns once its locks are taken: when /proc/locks has shown the same locks on the
     * file for 100 ms (QEMU sets them one by one). Asking a locking qemu-img instead would race with
     * qemu-io's own lock check and could make it give up.
     */
    public static Holder holdOpen(Path image) throws IOException, InterruptedException {
        Holder holder = holdOpen(image, List.of());
        String inode = ":" + java.nio.file.Files.getAttribute(image, "unix:ino") + " ";
        long seen = 0;
        int still = 0;
        for (int i = 0; i < 3000; i++) {
            long now = java.nio.file.Files.readAllLines(Path.of("/proc/locks")).stream().filter(l -> l.contains(inode))
                    .count();
            still = now > 0 && now == seen ? still + 1 : 0;
            seen = now;
            if (still == 10) {
                return holder;
            }
            if (!holder.process.isAlive()) {
                throw new AssertionError("qemu-io exited (" + holder.process.exitValue() + ") before it locked " + image);
            }
            Thread.sleep(10);
        }
        holder.close();
        throw new AssertionError("qemu-io did not lock " + image + " within 30 s");
    }

    /**
     * Starts qemu-io with {@code options} (e.g. -r, -f raw) on {@code image}; it holds the image open
     * until closed. The caller waits for its locks.
     */
    public static Holder holdOpen(Path image, List<String> options) throws IOException {
        List<String> command = new java.util.ArrayList<>(List.of("qemu-io", "-c", "sleep 30000"));
        command.addAll(options);
        command.add(image.toString());
        return new Holder(new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(ProcessBuilder.Redirect.DISCARD).start());
    }
}
