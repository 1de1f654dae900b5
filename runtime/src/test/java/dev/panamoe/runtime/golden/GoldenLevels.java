package dev.panamoe.runtime.golden;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.panamoe_h;

/** Runs golden work at the CPU's own level ("native") or forced to AVX2 ("avx2"), restoring the level after. */
final class GoldenLevels {
    private GoldenLevels() {
    }

    static void at(String level, Runnable body) {
        panamoe_h lib = panamoe_h.cpu();
        int before = CpuIsa.query(lib).level();
        int wanted = switch (level) {
            case "native" -> before;
            case "avx2" -> panamoe_h.PMOE_ISA_AVX2();
            default -> throw new IllegalArgumentException("level: native or avx2, got " + level);
        };
        CpuIsa.set(lib, wanted);
        try {
            body.run();
        } finally {
            CpuIsa.set(lib, before);
        }
    }
}
