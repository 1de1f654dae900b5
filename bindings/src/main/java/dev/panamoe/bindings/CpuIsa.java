package dev.panamoe.bindings;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The instruction-set level of the CPU library's kernels (pmoe_cpu_isa, pmoe_set_cpu_isa): the
 * level in use and the features the CPU has. The system property {@value #PROPERTY}
 * ({@code avx2}, {@code avx512} or {@code avx512_bf16}) is applied when the CPU library is
 * bound, like the environment variable PMOE_CPU_ISA, which the library reads itself.
 */
public record CpuIsa(int level, int features) {
    public static final String PROPERTY = "panamoe.cpu.isa";

    private static final String[] LEVELS = {"none", "avx2", "avx512", "avx512_bf16"};

    /** The level's name as PMOE_CPU_ISA spells it: "avx2", "avx512", "avx512_bf16". */
    public static String levelName(int level) {
        return level >= 1 && level < LEVELS.length ? LEVELS[level] : "level " + level;
    }

    /** The PMOE_ISA_* value of a level name; IllegalArgumentException naming {@code what} otherwise. */
    public static int parseLevel(String what, String name) {
        for (int l = 1; l < LEVELS.length; l++) {
            if (LEVELS[l].equals(name)) return l;
        }
        throw new IllegalArgumentException(what + ": expected avx2, avx512 or avx512_bf16, got \"" + name + "\"");
    }

    public String levelName() {
        return levelName(level);
    }

    public boolean has(int featureBit) {
        return (features & featureBit) != 0;
    }

    /** The highest level the CPU's features allow. */
    public int bestLevel() {
        if (!has(panamoe_h.PMOE_CPU_AVX2_FMA())) return 0;
        if (!has(panamoe_h.PMOE_CPU_AVX512())) return panamoe_h.PMOE_ISA_AVX2();
        return has(panamoe_h.PMOE_CPU_AVX512_BF16()) ? panamoe_h.PMOE_ISA_AVX512_BF16() : panamoe_h.PMOE_ISA_AVX512();
    }

    /** "avx2+fma avx512f/bw/vl/dq avx512_bf16" (the ones found), or "none". */
    public String featureNames() {
        List<String> names = new ArrayList<>();
        if (has(panamoe_h.PMOE_CPU_AVX2_FMA())) names.add("avx2+fma");
        if (has(panamoe_h.PMOE_CPU_AVX512())) names.add("avx512f/bw/vl/dq");
        if (has(panamoe_h.PMOE_CPU_AVX512_BF16())) names.add("avx512_bf16");
        return names.isEmpty() ? "none" : String.join(" ", names);
    }

    /** The level in use and the features found; throws NativeCallException if PMOE_CPU_ISA named an unusable level. */
    public static CpuIsa query(panamoe_h lib) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment level = arena.allocate(ValueLayout.JAVA_INT);
            MemorySegment features = arena.allocate(ValueLayout.JAVA_INT);
            NativeStatus.check(lib, lib.pmoe_cpu_isa(level, features), "pmoe_cpu_isa");
            return new CpuIsa(level.get(ValueLayout.JAVA_INT, 0), features.get(ValueLayout.JAVA_INT, 0));
        }
    }

    /** Uses {@code level} (PMOE_ISA_*) from now on; NativeCallException naming the missing feature if the CPU lacks it. */
    public static void set(panamoe_h lib, int level) {
        NativeStatus.check(lib, lib.pmoe_set_cpu_isa(level), "pmoe_set_cpu_isa");
    }

    /** Applies {@value #PROPERTY} if set, then checks that PMOE_CPU_ISA (if set) was usable. */
    static void applyProperty(panamoe_h lib) {
        String name = System.getProperty(PROPERTY);
        if (name != null) {
            int level = parseLevel("system property " + PROPERTY, name);
            try {
                set(lib, level);
            } catch (NativeCallException e) {
                throw new IllegalArgumentException("system property " + PROPERTY + "=" + name + ": " + e.getMessage(), e);
            }
        }
        query(lib);
    }
}
