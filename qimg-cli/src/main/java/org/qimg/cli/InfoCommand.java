package org.qimg.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

import org.qimg.ImageException;
import org.qimg.format.Bitmap;
import org.qimg.format.Qcow2Header;
import org.qimg.format.Snapshot;
import org.qimg.image.ImageDescription;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code qimg info}: what an image file says about itself, as {@code qemu-img info} (QEMU 7.2) prints
 * it. Like qemu-img it does not open the backing file unless {@code --backing-chain} asks for the
 * whole chain, so it also describes an image whose backing file is missing.
 */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Print the format, sizes, backing file, snapshots and format-specific details of an image "
                + "(of each image of its chain with --backing-chain).")
final class InfoCommand implements Callable<Integer> {
    private static final DateTimeFormatter SNAPSHOT_DATE = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");

    @Option(names = {"-f", "--format"}, paramLabel = "FMT", description = "image format (qcow2 or raw); probed if absent")
    String format;

    @Option(names = "--output", paramLabel = "FMT", defaultValue = "human", description = "human or json")
    String output;

    @Option(names = "--backing-chain", description = "describe every image of the backing chain")
    boolean backingChain;

    @Option(names = {"-U", "--force-share"}, description = "take no image locks: read an image another process writes")
    boolean forceShare;

    @Option(names = "--debug", hidden = true)
    boolean debug;

    @Parameters(index = "0", paramLabel = "IMAGE")
    String image;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        boolean json = Cli.json(output);
        Cli.checkFormat(format);
        List<ImageDescription> chain = collect();
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            if (backingChain) {
                ArrayNode list = QemuJson.MAPPER.createArrayNode();
                chain.forEach(d -> list.add(toJson(d)));
                out.print(QemuJson.write(list));
            } else {
                out.print(QemuJson.write(toJson(chain.get(0))));
            }
            out.print('\n');
        } else {
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < chain.size(); i++) {
                if (i > 0) {
                    text.append('\n');
                }
                human(chain.get(i), text);
            }
            out.print(text);
        }
        out.flush();
        return 0;
    }

    /** The top image, and with --backing-chain each backing file in turn, named as its overlay resolves it. */
    private List<ImageDescription> collect() throws IOException {
        List<ImageDescription> chain = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        String name = image;
        String fmt = format;
        while (name != null) {
            if (!seen.add(name)) {
                throw new ImageException("Backing file '" + name + "' creates an infinite loop.");
            }
            ImageDescription d = ImageDescription.read(name, fmt, forceShare);
            chain.add(d);
            if (!backingChain || d.header() == null) {
                break;
            }
            name = d.fullBackingFilename();
            fmt = d.header().backingFormat();
        }
        return chain;
    }

    /** The members qemu-img 7.2 prints, in the order it prints them (the order of its dictionaries). */
    static ObjectNode toJson(ImageDescription d) {
        ObjectNode o = QemuJson.object();
        Qcow2Header h = d.header();
        if (!d.snapshots().isEmpty()) {
            ArrayNode list = o.putArray("snapshots");
            for (Snapshot s : d.snapshots()) {
                ObjectNode n = list.addObject();
                if (s.icount() != -1) {
                    n.put("icount", s.icount());
                }
                n.put("vm-clock-nsec", s.vmClockNanos() % 1_000_000_000L);
                n.put("name", s.name());
                n.put("date-sec", s.dateSeconds());
                n.put("date-nsec", s.dateNanos());
                n.put("vm-clock-sec", s.vmClockNanos() / 1_000_000_000L);
                n.put("id", s.id());
                n.put("vm-state-size", s.vmStateSize());
            }
        }
        String backing = h == null || h.backingFile() == null || h.backingFile().isEmpty() ? null : h.backingFile();
        if (backing != null && h.backingFormat() != null) {
            o.put("backing-filename-format", h.backingFormat());
        }
        o.put("virtual-size", d.virtualSize());
        o.put("filename", d.filename());
        if (h != null) {
            o.put("cluster-size", h.clusterSize());
        }
        o.put("format", d.format());
        o.put("actual-size", d.actualSize());
        if (h != null) {
            ObjectNode specific = o.putObject("format-specific");
            specific.put("type", "qcow2");
            specific.set("data", qcow2Data(d));
        }
        if (backing != null) {
            o.put("full-backing-filename", d.fullBackingFilename());
            o.put("backing-filename", backing);
        }
        o.put("dirty-flag", h != null && h.dirty());
        return o;
    }

    private static ObjectNode qcow2Data(ImageDescription d) {
        Qcow2Header h = d.header();
        ObjectNode data = QemuJson.object();
        String compression = h.compressionType() == Qcow2Header.COMPRESSION_ZSTD ? "zstd" : "zlib";
        if (h.version() == 2) {
            data.put("compat", "0.10");
            data.put("compression-type", compression);
            data.put("refcount-bits", h.refcountBits());
            return data;
        }
        data.put("compat", "1.1");
        data.put("compression-type", compression);
        data.put("lazy-refcounts", h.lazyRefcounts());
        if (!d.bitmaps().isEmpty()) {
            ArrayNode list = data.putArray("bitmaps");
            for (Bitmap b : d.bitmaps()) {
                ObjectNode n = list.addObject();
                ArrayNode flags = n.putArray("flags");
                if (b.inUse()) {
                    flags.add("in-use");
                }
                if (b.auto()) {
                    flags.add("auto");
                }
                n.put("name", b.name());
                n.put("granularity", b.granularity());
            }
        }
        data.put("refcount-bits", h.refcountBits());
        if (h.dataFile() != null) {
            data.put("data-file", h.dataFile());
        }
        if (h.hasDataFile()) {
            data.put("data-file-raw", h.dataFileRaw());
        }
        data.put("corrupt", h.corrupt());
        data.put("extended-l2", h.extendedL2());
        return data;
    }

    /** qemu-img's human layout (block/qapi.c in QEMU 7.2: bdrv_image_info_dump and bdrv_snapshot_dump). */
    static void human(ImageDescription d, StringBuilder text) {
        Qcow2Header h = d.header();
        text.append("image: ").append(d.filename()).append('\n');
        text.append("file format: ").append(d.format()).append('\n');
        text.append("virtual size: ").append(Sizes.human(d.virtualSize())).append(" (").append(d.virtualSize())
                .append(" bytes)\n");
        text.append("disk size: ").append(Sizes.human(d.actualSize())).append('\n');
        if (h != null) {
            text.append("cluster_size: ").append(h.clusterSize()).append('\n');
            if (h.dirty()) {
                text.append("cleanly shut down: no\n");
            }
            if (h.backingFile() != null && !h.backingFile().isEmpty()) {
                text.append("backing file: ").append(h.backingFile());
                if (!h.backingFile().equals(d.fullBackingFilename())) {
                    text.append(" (actual path: ").append(d.fullBackingFilename()).append(')');
                }
                text.append('\n');
                if (h.backingFormat() != null) {
                    text.append("backing file format: ").append(h.backingFormat()).append('\n');
                }
            }
        }
        if (!d.snapshots().isEmpty()) {
            text.append("Snapshot list:\n");
            text.append(String.format("%-10s%-17s%8s%20s%13s%11s", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"))
                    .append('\n');
            for (Snapshot s : d.snapshots()) {
                long seconds = s.vmClockNanos() / 1_000_000_000L;
                String clock = String.format("%02d:%02d:%02d.%03d", (int) (seconds / 3600), (int) ((seconds / 60) % 60),
                        (int) (seconds % 60), (int) ((s.vmClockNanos() / 1_000_000) % 1000));
                String date = LocalDateTime.ofInstant(Instant.ofEpochSecond(s.dateSeconds()), ZoneId.systemDefault())
                        .format(SNAPSHOT_DATE);
                text.append(padRight(s.id(), 9)).append(' ').append(padRight(s.name(), 16)).append(' ')
                        .append(String.format("%8s%20s%13s%11s", Sizes.human(s.vmStateSize()), date, clock,
                                s.icount() == -1 ? "" : Long.toString(s.icount())))
                        .append('\n');
            }
        }
        if (h != null) {
            JsonNode data = qcow2Data(d);
            if (!data.isEmpty()) {
                text.append("Format specific information:\n");
                dump(data, 1, text);
            }
        }
    }

    /** C's "%-Ns": pads to N bytes of UTF-8, not characters. */
    private static String padRight(String s, int width) {
        int bytes = s.getBytes(StandardCharsets.UTF_8).length;
        return bytes >= width ? s : s + " ".repeat(width - bytes);
    }

    /** qemu-img's dump of a format-specific tree: "key: value", dashes as spaces, lists as "[i]:". */
    private static void dump(JsonNode node, int indent, StringBuilder text) {
        String pad = " ".repeat(indent * 4);
        if (node.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                line(pad + e.getKey().replace('-', ' ') + ":", e.getValue(), indent, text);
            }
        } else {
            for (int i = 0; i < node.size(); i++) {
                line(pad + "[" + i + "]:", node.get(i), indent, text);
            }
        }
    }

    private static void line(String label, JsonNode value, int indent, StringBuilder text) {
        text.append(label);
        if (value.isContainerNode()) {
            text.append('\n');
            dump(value, indent + 1, text);
        } else {
            text.append(' ').append(value.asText()).append('\n');
        }
    }
}
