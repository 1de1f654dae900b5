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
 * embedded broadcasts, bf16 dot products) appear only in the micro-kernels compiled for the
 * AVX-512 levels, which pmoe_cpu_isa's dispatch calls only on CPUs that have them. Read from the
 * disassembly with {@code objdump -d} (binutils, which the build needs anyway), so a baseline
 * flag or an inlined helper that lets the compiler emit AVX-512 elsewhere is caught on any host.
 */
class Avx512ConfinementTest {
    private static final Pattern FUNCTION = Pattern.compile("^[0-9a-f]+ <(.+)>:$");
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
        // pmoe::avx512_f32::(anon)::kernel and pmoe::avx512_bf16::(anon)::kernel (gemm_avx512.cpp)
        Set<String> kernels = new TreeSet<>();
        for (String name : using) {
            if (name.startsWith("_ZN4pmoe10avx512_f32") || name.startsWith("_ZN4pmoe11avx512_bf16")) kernels.add(name);
        }
        assertEquals(kernels, using, "functions of " + library + " with AVX-512 instructions outside gemm_avx512.cpp");
        assertEquals(2, kernels.size(), "the f32 and the bf16 AVX-512 kernels are found: " + using);
    }
}
