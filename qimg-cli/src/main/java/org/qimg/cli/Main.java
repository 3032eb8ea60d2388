package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;

import org.qimg.ImageException;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The qimg command line: subcommands in the spirit of qemu-img. */
@Command(name = "qimg", mixinStandardHelpOptions = true, version = "qimg 0.1.0",
        description = "Inspect, map and convert qcow2 images and their backing chains.",
        subcommands = {InfoCommand.class, MapCommand.class, SeekCommand.class, IoCommand.class, ResizeCommand.class,
                BenchCommand.class, ConvertCommand.class, CompareCommand.class, ServeCommand.class,
                CreateCommand.class, CheckCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "Not enough arguments: give a subcommand");
    }

    public static void main(String[] args) {
        PrintWriter out = new PrintWriter(new java.io.BufferedWriter(new java.io.OutputStreamWriter(
                new java.io.FileOutputStream(java.io.FileDescriptor.out), java.nio.charset.StandardCharsets.UTF_8),
                1 << 16), false);
        System.exit(run(args, out, new PrintWriter(System.err, true)));
    }

    /** Runs the command line; returns the exit code. Output goes to {@code out}, errors to {@code err}. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        boolean debug = false;
        for (String a : args) {
            if (a.equals("--debug")) {
                debug = true;
            }
        }
        final boolean showStack = debug;
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> failed(e, showStack, out, err));
        cl.setParameterExceptionHandler((e, args2) -> {
            err.println("qimg: " + oneLine(e));
            err.flush();
            // compare's exit code 1 means "the images differ": a usage error there is an error (2).
            return e.getCommandLine().getCommand() instanceof CompareCommand ? CompareCommand.EXIT_ERROR : 1;
        });
        int code = cl.execute(args);
        out.flush();
        return code;
    }

    /** Reports a failed command as qemu-img does, one line on stderr; returns the exit code. */
    static int failed(Throwable e, boolean showStack, PrintWriter out, PrintWriter err) {
        out.flush();
        if (showStack) {
            e.printStackTrace(err);
        }
        err.println("qimg: " + oneLine(e));
        err.flush();
        return 1;
    }

    static String oneLine(Throwable e) {
        String message = e.getMessage();
        if (e instanceof OutOfMemoryError) {
            message = "out of memory";
        } else if (message == null || message.isBlank()) {
            message = e.getClass().getSimpleName();
        } else if (!(e instanceof ImageException) && e instanceof IOException && !(e instanceof java.nio.file.NoSuchFileException)) {
            message = message.strip();
        }
        if (e instanceof java.nio.file.NoSuchFileException nsf) {
            message = "Could not open '" + nsf.getFile() + "': No such file or directory";
        } else if (e instanceof java.nio.file.AccessDeniedException ade) {
            message = "Could not open '" + ade.getFile() + "': Permission denied";
        }
        return message.replace('\n', ' ');
    }
}
