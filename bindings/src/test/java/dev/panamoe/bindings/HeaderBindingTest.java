package dev.panamoe.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** panamoe_h binds exactly what panamoe.h declares: every function and constant macro, nothing else. */
class HeaderBindingTest {
    private static final Pattern FUNCTION = Pattern.compile("PMOE_API\\s+([^;(]*?)\\b(pmoe_\\w+)\\s*\\(([^)]*)\\)\\s*;");
    private static final Pattern MACRO = Pattern.compile("(?m)^\\s*#define\\s+(PMOE_\\w+)\\s+\\(?\\s*(-?\\d+)\\s*\\)?\\s*$");

    /** One C type of the header, as the binding must carry it. */
    private record Carrier(ValueLayout layout, Class<?> javaType) {}

    private record Function(String name, Carrier result, List<Carrier> params) {}

    private static final String HEADER = readHeader();
    private static final Map<String, Function> FUNCTIONS = parseFunctions(HEADER);
    private static final Map<String, Integer> MACROS = parseMacros(HEADER);

    private static String readHeader() {
        try {
            String text = Files.readString(Path.of(System.getProperty("panamoe.header")));
            return text.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\n]*", " ");
        } catch (IOException e) {
            throw new IllegalStateException("cannot read panamoe.h (system property panamoe.header)", e);
        }
    }

    private static Map<String, Function> parseFunctions(String header) {
        Map<String, Function> functions = new LinkedHashMap<>();
        Matcher m = FUNCTION.matcher(header);
        while (m.find()) {
            String params = m.group(3).strip();
            List<Carrier> carriers = params.equals("void") ? List.of()
                    : Arrays.stream(params.split(",")).map(p -> carrier(p.replaceAll("\\w+\\s*$", ""))).toList();
            functions.put(m.group(2), new Function(m.group(2), carrier(m.group(1)), carriers));
        }
        return functions;
    }

    /** int32_t -> int, int64_t -> long, float -> float, any pointer -> MemorySegment. */
    private static Carrier carrier(String cType) {
        if (cType.contains("*")) return new Carrier(ValueLayout.ADDRESS, MemorySegment.class);
        return switch (cType.replace("const", "").strip()) {
            case "int", "int32_t" -> new Carrier(ValueLayout.JAVA_INT, int.class);
            case "int64_t" -> new Carrier(ValueLayout.JAVA_LONG, long.class);
            case "float" -> new Carrier(ValueLayout.JAVA_FLOAT, float.class);
            default -> throw new IllegalStateException("panamoe.h uses C type '" + cType.strip()
                    + "' that this test does not map yet; extend carrier()");
        };
    }

    private static Map<String, Integer> parseMacros(String header) {
        Map<String, Integer> macros = new LinkedHashMap<>();
        Matcher m = MACRO.matcher(header);
        while (m.find()) macros.put(m.group(1), Integer.parseInt(m.group(2)));
        return macros;
    }

    /** A layout as the header sees it: no name, no target layout. */
    private static MemoryLayout carrierOf(MemoryLayout layout) {
        MemoryLayout l = layout instanceof AddressLayout a ? a.withoutTargetLayout() : layout;
        return l.withoutName();
    }

    @Test
    void parserFindsTheDeclarations() {
        // Guards against a parser that silently finds nothing and lets every other check pass.
        Function gemm = FUNCTIONS.get("pmoe_gemm");
        assertEquals(14, gemm.params().size(), "pmoe_gemm parameters");
        assertEquals(ValueLayout.JAVA_FLOAT, gemm.params().get(5).layout(), "pmoe_gemm alpha");
        assertEquals(ValueLayout.ADDRESS, FUNCTIONS.get("pmoe_last_error").result().layout());
        assertEquals(List.of(), FUNCTIONS.get("pmoe_noop").params());
        assertEquals(ValueLayout.JAVA_LONG, FUNCTIONS.get("pmoe_find_nonfinite").params().get(1).layout());
        assertEquals(-1, MACROS.get("PMOE_CAPACITY_DROPLESS"));
        assertEquals(0, MACROS.get("PMOE_OK"));
        assertTrue(FUNCTIONS.size() >= 20, "functions found: " + FUNCTIONS.keySet());
    }

    @TestFactory
    Stream<DynamicTest> everyFunctionHasDescriptorAndWrapper() {
        return FUNCTIONS.values().stream().map(f -> DynamicTest.dynamicTest(f.name(), () -> {
            FunctionDescriptor desc = (FunctionDescriptor) panamoe_h.class.getMethod(f.name() + "$descriptor").invoke(null);
            assertEquals(f.result().layout(), carrierOf(desc.returnLayout().orElseThrow()), f.name() + " result");
            List<MemoryLayout> args = desc.argumentLayouts();
            assertEquals(f.params().size(), args.size(), f.name() + " arity");
            for (int i = 0; i < args.size(); i++) {
                assertEquals(f.params().get(i).layout(), carrierOf(args.get(i)), f.name() + " parameter " + i);
            }
            Class<?>[] javaTypes = f.params().stream().map(Carrier::javaType).toArray(Class<?>[]::new);
            Method wrapper = panamoe_h.class.getMethod(f.name(), javaTypes);
            assertEquals(f.result().javaType(), wrapper.getReturnType(), f.name() + " wrapper result");
            panamoe_h.class.getMethod(f.name() + "$handle");
            panamoe_h.class.getMethod(f.name() + "$address");
        }));
    }

    /** The CPU library is the reference implementation: it must export every function the header declares. */
    @TestFactory
    Stream<DynamicTest> cpuLibraryExportsEveryFunction() {
        NativeLibraries.Loaded cpu = panamoe_h.cpu().library();
        return FUNCTIONS.keySet().stream().map(name -> DynamicTest.dynamicTest(name,
                () -> assertTrue(cpu.lookup().find(name).isPresent(), name + " is not exported by " + cpu.path())));
    }

    @Test
    void everyMacroHasItsValue() throws ReflectiveOperationException {
        for (Map.Entry<String, Integer> macro : MACROS.entrySet()) {
            Object value = panamoe_h.class.getMethod(macro.getKey()).invoke(null);
            assertEquals(macro.getValue(), value, macro.getKey());
        }
    }

    @Test
    void nothingBoundThatTheHeaderLacks() {
        Set<String> descriptors = new TreeSet<>();
        Set<String> wrappers = new TreeSet<>();
        Set<String> constants = new TreeSet<>();
        for (Method m : panamoe_h.class.getDeclaredMethods()) {
            if (!Modifier.isPublic(m.getModifiers())) continue;
            String name = m.getName();
            if (name.endsWith("$descriptor")) descriptors.add(name.substring(0, name.length() - "$descriptor".length()));
            else if (name.startsWith("pmoe_") && !name.contains("$")) wrappers.add(name);
            else if (name.startsWith("PMOE_")) constants.add(name);
        }
        assertEquals(new TreeSet<>(FUNCTIONS.keySet()), descriptors, "functions with a $descriptor()");
        assertEquals(new TreeSet<>(FUNCTIONS.keySet()), wrappers, "typed wrappers");
        assertEquals(new TreeSet<>(MACROS.keySet()), constants, "constant macros");
    }

    @Test
    void everyStatusCodeHasItsName() {
        MACROS.forEach((name, value) -> {
            if (name.equals("PMOE_OK") || name.startsWith("PMOE_ERR_")) assertEquals(name, NativeStatus.name(value));
        });
        assertEquals("unknown status 99", NativeStatus.name(99));
    }
}
