package dev.panamoe.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The CPU library runs on AVX2-only CPUs: AVX-512 instructions (zmm, opmask, xmm16-31 registers,
 * embedded broadcasts, bf16 dot products) appear only in the code compiled for the AVX-512 levels,
 * in namespaces pmoe::avx512_* (the GEMM kernels and the bf16 pair packing of gemm_avx512.cpp;
 * the activation, attention, norm and elementwise loops of activation_avx512.cpp,
 * attention_avx512.cpp, norm_avx512.cpp and elementwise_avx512.cpp), which pmoe_cpu_isa's
 * dispatch calls only on CPUs that have them. Read from the disassembly with {@code objdump -d}
 * (binutils, which the build needs anyway), so a baseline flag or an inlined helper that lets the
 * compiler emit AVX-512 elsewhere is caught on any host.
 */
class Avx512ConfinementTest {
    private static final Pattern FUNCTION = Pattern.compile("^[0-9a-f]+ <(.+)>:$");
    private static final Pattern IN_AVX512_NAMESPACE = Pattern.compile("_ZN4pmoe\\d+avx512_");
    private static final Pattern AVX512 = Pattern.compile(
            "%zmm|%k[0-7]\\b|\\{1to\\d+\\}|%[xy]mm(1[6-9]|2\\d|3[01])\\b|\\s(kmov|kand|kor|kxor|knot|kshift)\\w*\\s|vdpbf16ps|vcvtne2?ps2bf16");

    @Test
    void onlyTheAvx512KernelsUseAvx512() throws IOException, InterruptedException {
        Path library = NativeLibraries.panamoeCpu().path();
        Process objdump = new ProcessBuilder("objdump", "-d", "--no-show-raw-insn", library.toString())
                .redirectErrorStream(true).start();
        String out = new String(objdump.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(objdump.waitFor(120, TimeUnit.SECONDS), "objdump -d " + library + " did not finish");
        assertEquals(0, objdump.exitValue(), "objdump -d " + library + ": " + out.lines().limit(5).toList());
        Set<String> using = new TreeSet<>();
        String function = "";
        for (String line : out.split("\n")) {
            var f = FUNCTION.matcher(line);
            if (f.matches()) {
                function = f.group(1);
            } else if (AVX512.matcher(line).find()) {
                using.add(function);
            }
        }
        // Mangled pmoe::avx512_f32::..., pmoe::avx512_bf16::..., pmoe::avx512_act::..., pmoe::avx512_attn::...,
        // pmoe::avx512_norm::..., pmoe::avx512_elem::...
        Set<String> confined = new TreeSet<>();
        for (String name : using) {
            if (IN_AVX512_NAMESPACE.matcher(name).lookingAt()) confined.add(name);
        }
        assertEquals(confined, using, "functions of " + library + " with AVX-512 instructions outside pmoe::avx512_*");
        for (String namespace : new String[] {"avx512_f32", "avx512_bf16", "avx512_act", "avx512_attn", "avx512_norm",
                "avx512_elem"}) {
            String mangled = "_ZN4pmoe" + namespace.length() + namespace;
            assertTrue(using.stream().anyMatch(n -> n.startsWith(mangled)),
                    "pmoe::" + namespace + " (AVX-512 code the dispatch calls) is found among " + using);
        }
    }
}
