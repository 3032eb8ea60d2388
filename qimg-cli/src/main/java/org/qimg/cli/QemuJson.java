package org.qimg.cli;

import java.io.IOException;
import java.io.StringWriter;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.PrettyPrinter;
import com.fasterxml.jackson.core.SerializableString;
import com.fasterxml.jackson.core.io.CharacterEscapes;
import com.fasterxml.jackson.core.io.SerializedString;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * JSON laid out the way qemu-img's pretty printer lays it out: four spaces per level, {@code "key": value},
 * every member and element on its own line (empty arrays and objects too, closed on a line of their
 * own), and every character outside printable ASCII escaped as {@code \\uXXXX}.
 */
final class QemuJson {
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(JsonWriteFeature.ESCAPE_NON_ASCII)
            .build();

    private QemuJson() {
    }

    static ObjectNode object() {
        return JsonNodeFactory.instance.objectNode();
    }

    /** The text of {@code node}, without a trailing newline. */
    static String write(JsonNode node) throws IOException {
        StringWriter out = new StringWriter();
        try (JsonGenerator gen = MAPPER.getFactory().createGenerator(out)) {
            gen.setPrettyPrinter(new Layout());
            gen.setCharacterEscapes(new Escapes());
            MAPPER.writeTree(gen, node);
        }
        return out.toString();
    }

    /** QEMU escapes DEL too, besides the control characters and everything past ASCII. */
    private static final class Escapes extends CharacterEscapes {
        private static final long serialVersionUID = 1L;
        private final int[] table;

        Escapes() {
            table = standardAsciiEscapesForJSON();
            table[0x7F] = ESCAPE_STANDARD;
        }

        @Override
        public int[] getEscapeCodesForAscii() {
            return table;
        }

        @Override
        public SerializableString getEscapeSequence(int ch) {
            return new SerializedString(String.format("\\u%04X", ch));
        }
    }

    private static final class Layout implements PrettyPrinter {
        private int depth;

        private void newline(JsonGenerator gen) throws IOException {
            gen.writeRaw('\n');
            for (int i = 0; i < depth; i++) {
                gen.writeRaw("    ");
            }
        }

        @Override
        public void writeRootValueSeparator(JsonGenerator gen) {
        }

        @Override
        public void writeStartObject(JsonGenerator gen) throws IOException {
            gen.writeRaw('{');
            depth++;
        }

        @Override
        public void beforeObjectEntries(JsonGenerator gen) throws IOException {
            newline(gen);
        }

        @Override
        public void writeObjectFieldValueSeparator(JsonGenerator gen) throws IOException {
            gen.writeRaw(": ");
        }

        @Override
        public void writeObjectEntrySeparator(JsonGenerator gen) throws IOException {
            gen.writeRaw(',');
            newline(gen);
        }

        @Override
        public void writeEndObject(JsonGenerator gen, int nrOfEntries) throws IOException {
            // An empty object closes on a line of its own, as a full one does.
            depth--;
            newline(gen);
            gen.writeRaw('}');
        }

        @Override
        public void writeStartArray(JsonGenerator gen) throws IOException {
            gen.writeRaw('[');
            depth++;
        }

        @Override
        public void beforeArrayValues(JsonGenerator gen) throws IOException {
            newline(gen);
        }

        @Override
        public void writeArrayValueSeparator(JsonGenerator gen) throws IOException {
            gen.writeRaw(',');
            newline(gen);
        }

        @Override
        public void writeEndArray(JsonGenerator gen, int nrOfValues) throws IOException {
            depth--;
            newline(gen);
            gen.writeRaw(']');
        }
    }
}
