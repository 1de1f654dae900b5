package dev.panamoe.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every struct class matches the C compiler's layout, as printed by pmoe_layout (built by CMake
 * from panamoe.h): sizeof, and per field its offset and size, with no extra Java fields.
 */
class StructLayoutTest {
    private record Field(String name, long offset, long size) {}

    private record Struct(String name, long size, List<Field> fields) {}

    private static final Map<String, Struct> C_LAYOUTS = runLayoutTool();

    private static Map<String, Struct> runLayoutTool() {
        String tool = System.getProperty("panamoe.layout.tool");
        try {
            Process p = new ProcessBuilder(tool).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() != 0) throw new IllegalStateException(tool + " failed: " + out);
            return parse(out);
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("cannot run the layout tool " + tool + " (system property panamoe.layout.tool)", e);
        }
    }

    /** "struct <name> <size>" starts a struct; "field <struct>.<field> <offset> <size>" adds to it. */
    private static Map<String, Struct> parse(String out) {
        Map<String, Struct> structs = new LinkedHashMap<>();
        for (String line : out.split("\n")) {
            String[] w = line.strip().split("\\s+");
            if (w[0].equals("struct")) {
                structs.put(w[1], new Struct(w[1], Long.parseLong(w[2]), new ArrayList<>()));
            } else if (w[0].equals("field")) {
                String[] owner = w[1].split("\\.");
                structs.get(owner[0]).fields().add(new Field(owner[1], Long.parseLong(w[2]), Long.parseLong(w[3])));
            } else if (!line.isBlank()) {
                throw new IllegalStateException("unexpected layout tool line: " + line);
            }
        }
        return structs;
    }

    private static Class<?> structClass(String name) throws ClassNotFoundException {
        return Class.forName("dev.panamoe.bindings." + name);
    }

    private static Object call(Class<?> c, String method) throws ReflectiveOperationException {
        return c.getMethod(method).invoke(null);
    }

    @Test
    void layoutToolCoversEveryStructAndFieldOfTheHeader() throws IOException {
        String header = Files.readString(Path.of(System.getProperty("panamoe.header")))
                .replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\n]*", " ");
        Map<String, List<String>> declared = new LinkedHashMap<>();
        Matcher m = Pattern.compile("(?s)typedef\\s+struct\\s+\\w+\\s*\\{(.*?)\\}\\s*(\\w+)\\s*;").matcher(header);
        while (m.find()) {
            List<String> fields = Arrays.stream(m.group(1).split(";")).map(String::strip).filter(f -> !f.isEmpty())
                    .map(f -> f.replaceAll(".*?(\\w+)$", "$1")).toList();
            declared.put(m.group(2), fields);
        }
        Map<String, List<String>> printed = new LinkedHashMap<>();
        C_LAYOUTS.values().forEach(s -> printed.put(s.name(), s.fields().stream().map(Field::name).toList()));
        assertEquals(declared, printed, "structs of panamoe.h vs lines of pmoe_layout.c");
        assertTrue(declared.containsKey("pmoe_router_config"), "structs found in panamoe.h: " + declared.keySet());
    }

    @TestFactory
    Stream<DynamicTest> javaLayoutMatchesC() {
        return C_LAYOUTS.values().stream().map(s -> DynamicTest.dynamicTest(s.name(), () -> {
            Class<?> c = structClass(s.name());
            GroupLayout layout = (GroupLayout) call(c, "layout");
            assertEquals(s.size(), (long) call(c, "sizeof"), s.name() + " sizeof");
            assertEquals(s.size(), layout.byteSize(), s.name() + " layout size");
            for (Field f : s.fields()) {
                assertEquals(f.offset(), (long) call(c, f.name() + "$offset"), s.name() + "." + f.name() + " offset");
                MemoryLayout fieldLayout = (MemoryLayout) call(c, f.name() + "$layout");
                assertEquals(f.size(), fieldLayout.byteSize(), s.name() + "." + f.name() + " size");
            }
            List<String> javaFields = layout.memberLayouts().stream().filter(l -> !(l instanceof PaddingLayout))
                    .map(l -> l.name().orElseThrow()).toList();
            assertEquals(s.fields().stream().map(Field::name).toList(), javaFields, s.name() + " fields");
        }));
    }

    /** Setters write at the C offsets and getters read them back. */
    @TestFactory
    Stream<DynamicTest> accessorsUseTheCOffsets() {
        return C_LAYOUTS.values().stream().map(s -> DynamicTest.dynamicTest(s.name(), () -> {
            Class<?> c = structClass(s.name());
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment struct = (MemorySegment) c.getMethod("allocate", SegmentAllocator.class)
                        .invoke(null, arena);
                assertEquals(s.size(), struct.byteSize(), s.name() + " allocate");
                int value = 1000;
                for (Field f : s.fields()) {
                    ValueLayout layout = (ValueLayout) call(c, f.name() + "$layout");
                    Object v = box(layout.carrier(), ++value);
                    c.getMethod(f.name(), MemorySegment.class, layout.carrier()).invoke(null, struct, v);
                    assertEquals(v, read(struct, layout.carrier(), f.offset()), s.name() + "." + f.name() + " at C offset");
                    assertEquals(v, c.getMethod(f.name(), MemorySegment.class).invoke(null, struct), s.name() + "." + f.name());
                }
            }
        }));
    }

    private static Object box(Class<?> carrier, int v) {
        if (carrier == int.class) return v;
        if (carrier == long.class) return (long) v << 33; // exercises the high word
        if (carrier == float.class) return v + 0.25f;
        throw new IllegalStateException("struct field carrier " + carrier + " not covered by this test");
    }

    private static Object read(MemorySegment s, Class<?> carrier, long offset) {
        if (carrier == int.class) return s.get(ValueLayout.JAVA_INT, offset);
        if (carrier == long.class) return s.get(ValueLayout.JAVA_LONG, offset);
        return s.get(ValueLayout.JAVA_FLOAT, offset);
    }
}
