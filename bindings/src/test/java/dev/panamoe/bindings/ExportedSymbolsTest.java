package dev.panamoe.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Every implementation of panamoe.h exports every function the CPU library (the reference)
 * exports, read from the dynamic symbol tables with {@code nm -D} (binutils, which the build
 * needs anyway), so a function the CPU library exports beyond the header is caught too.
 */
class ExportedSymbolsTest {
    /** The defined, exported pmoe_* functions of a shared library. */
    private static Set<String> exportedFunctions(Path library) throws IOException, InterruptedException {
        Process nm = new ProcessBuilder("nm", "-D", "--defined-only", library.toString()).redirectErrorStream(true).start();
        String out = new String(nm.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(nm.waitFor(60, TimeUnit.SECONDS), "nm -D " + library + " did not finish");
        assertEquals(0, nm.exitValue(), "nm -D " + library + ": " + out);
        Set<String> names = new TreeSet<>();
        for (String line : out.split("\n")) {
            String[] f = line.trim().split("\\s+"); // "<address> T <name>"
            if (f.length == 3 && f[1].equals("T") && f[2].startsWith("pmoe_")) names.add(f[2]);
        }
        return names;
    }

    private static Path library(String fileName) {
        try {
            return NativeLibraries.panamoe(fileName).path();
        } catch (NativeLibraryUnavailableException e) {
            // Built only where nvcc (and for the harness, Boost.Context) is installed; CI has both.
            Assumptions.abort(fileName + " is not built here, skipped: " + e.getMessage());
            throw e;
        }
    }

    private static void assertExportsEverythingTheCpuDoes(String fileName) throws Exception {
        Set<String> cpu = exportedFunctions(NativeLibraries.panamoeCpu().path());
        assertTrue(cpu.contains("pmoe_gemm") && cpu.size() >= 40, "nm found the CPU library's functions: " + cpu);
        Set<String> missing = new TreeSet<>(cpu);
        missing.removeAll(exportedFunctions(library(fileName)));
        assertEquals(Set.of(), missing, "functions of libpanamoe_cpu.so that " + fileName + " does not export");
    }

    @Test
    void cudaLibraryExportsEveryCpuFunction() throws Exception {
        assertExportsEverythingTheCpuDoes(NativeLibraries.PANAMOE_CUDA);
    }

    @Test
    void hostHarnessLibraryExportsEveryCpuFunction() throws Exception {
        assertExportsEverythingTheCpuDoes("libpanamoe_cuda_host.so");
    }
}
