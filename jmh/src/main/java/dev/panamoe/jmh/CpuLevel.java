package dev.panamoe.jmh;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.panamoe_h;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The CPU instruction-set levels the benchmarks run at, named as {@code PMOE_CPU_ISA} names them,
 * and the machine's limit at each: chains of independent vector instructions in
 * {@code libpmoe_peak.so} (jmh/src/main/c/peak_rate.c, packaged in benchmarks.jar), which also
 * says which CPU feature a level lacks here. Run as a program it prints one line per level
 * ({@code avx2 ok}, {@code avx512_bf16 skipped: CPU lacks avx512_bf16}), or with
 * {@code --supported} the comma-separated levels this CPU runs (for {@code -p isa=...}).
 */
public enum CpuLevel {
    /** 256-bit FMA (AVX2 + FMA). */
    AVX2,
    /** 512-bit FMA (AVX-512F). */
    AVX512,
    /** AVX-512 BF16: vdpbf16ps, bf16 pairs into fp32. */
    AVX512_BF16;

    /** The level's name in PMOE_CPU_ISA and the benchmarks' isa parameter. */
    public String isaName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static CpuLevel named(String isa) {
        for (CpuLevel level : values()) {
            if (level.isaName().equals(isa)) return level;
        }
        throw new IllegalArgumentException("isa: unknown level '" + isa + "', expected one of "
                + Arrays.stream(values()).map(CpuLevel::isaName).collect(Collectors.joining(", ")));
    }

    /** The CPU feature this level needs and the CPU (or its OS) lacks, if any. */
    public Optional<String> missingFeature() {
        try {
            MemorySegment name = (MemorySegment) Native.MISSING.invokeExact(ordinal());
            return name.equals(MemorySegment.NULL) ? Optional.empty()
                    : Optional.of(name.reinterpret(64).getString(0));
        } catch (Throwable t) {
            throw new IllegalStateException("pmoe_peak_missing failed", t);
        }
    }

    /**
     * Throws, naming the missing feature, when the CPU cannot run this level: called from a
     * benchmark's setup, JMH reports that parameter set as failed with this reason and goes on.
     */
    public void requireSupported() {
        missingFeature().ifPresent(f -> {
            throw new UnsupportedOperationException(isaName() + " skipped: CPU lacks " + f);
        });
    }

    /**
     * Makes the CPU library's kernels run at this level from now on (pmoe_set_cpu_isa), after
     * {@link #requireSupported}: a benchmark's setup calls it before its first kernel.
     */
    public void selectForKernels() {
        requireSupported();
        CpuIsa.set(panamoe_h.cpu(), CpuIsa.parseLevel("isa", isaName()));
    }

    /** FLOPs of {@link #runChains} per loop iteration. */
    public double flopsPerIteration() {
        try {
            return (double) Native.FLOPS.invokeExact(ordinal());
        } catch (Throwable t) {
            throw new IllegalStateException("pmoe_peak_flops_per_iteration failed", t);
        }
    }

    /** Runs the level's chains for {@code iterations} loop iterations; returns their sum. */
    public float runChains(long iterations) {
        try {
            return (float) Native.RUN.invokeExact(ordinal(), iterations);
        } catch (Throwable t) {
            throw new IllegalStateException("pmoe_peak_run failed", t);
        }
    }

    public static void main(String[] args) {
        boolean supportedOnly = args.length == 1 && args[0].equals("--supported");
        if (args.length > 1 || (args.length == 1 && !supportedOnly)) {
            System.err.println("usage: CpuLevel [--supported]");
            System.exit(2);
        }
        if (supportedOnly) {
            System.out.println(Arrays.stream(values()).filter(l -> l.missingFeature().isEmpty())
                    .map(CpuLevel::isaName).collect(Collectors.joining(",")));
            return;
        }
        for (CpuLevel level : values()) {
            System.out.println(level.isaName() + level.missingFeature().map(f -> " skipped: CPU lacks " + f).orElse(" ok"));
        }
    }

    /** The downcall handles, bound on first use (the library is extracted from this jar once per JVM). */
    @SuppressWarnings("restricted") // loading the benchmark's own native library
    private static final class Native {
        static final String RESOURCE = "/bench-native/libpmoe_peak.so";
        static final MethodHandle MISSING;
        static final MethodHandle FLOPS;
        static final MethodHandle RUN;

        static {
            SymbolLookup lib = SymbolLookup.libraryLookup(extract(), Arena.global());
            Linker linker = Linker.nativeLinker();
            MISSING = linker.downcallHandle(lib.findOrThrow("pmoe_peak_missing"),
                    FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            FLOPS = linker.downcallHandle(lib.findOrThrow("pmoe_peak_flops_per_iteration"),
                    FunctionDescriptor.of(ValueLayout.JAVA_DOUBLE, ValueLayout.JAVA_INT));
            RUN = linker.downcallHandle(lib.findOrThrow("pmoe_peak_run"),
                    FunctionDescriptor.of(ValueLayout.JAVA_FLOAT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        }

        private static Path extract() {
            try (InputStream in = CpuLevel.class.getResourceAsStream(RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("classpath resource " + RESOURCE
                            + " is missing: build the jmh module with Maven (it compiles jmh/src/main/c)");
                }
                Path file = Files.createTempFile("libpmoe_peak", ".so");
                file.toFile().deleteOnExit();
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                return file;
            } catch (IOException e) {
                throw new UncheckedIOException("extracting " + RESOURCE + " failed", e);
            }
        }
    }
}
