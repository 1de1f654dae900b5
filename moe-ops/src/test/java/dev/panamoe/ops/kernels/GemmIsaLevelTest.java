package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.GemmKernelTest.checkGemm;
import static dev.panamoe.ops.kernels.GemmKernelTest.tolerance;
import static dev.panamoe.ops.kernels.GroupedGemmKernelTest.abs2;
import static dev.panamoe.ops.kernels.GroupedGemmKernelTest.nativeGrouped;
import static dev.panamoe.ops.kernels.GroupedGemmKernelTest.nativeGroupedTN;
import static dev.panamoe.ops.kernels.GroupedGemmKernelTest.offsets;
import static dev.panamoe.ops.kernels.GroupedGemmKernelTest.toDouble2;
import static dev.panamoe.ops.kernels.KernelTestSupport.BF16;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.abs;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertClose;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertExactly;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertRejected;
import static dev.panamoe.ops.kernels.KernelTestSupport.atLevel;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.toFloats;
import static dev.panamoe.ops.kernels.KernelTestSupport.uniform;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.panamoe_h;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every GEMM entry point, f32 and bf16, at every instruction-set level (AVX2, AVX-512,
 * AVX512_BF16) the CPU has, against the double-precision references: the levels below the best
 * one are forced with pmoe_set_cpu_isa, so each micro-kernel and packing path runs on any
 * machine that has it; a level the CPU lacks is skipped with the library's reason.
 */
class GemmIsaLevelTest {

    private static final int[] SIZES = {0, 1, 13, 33, 130};

    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2, 3})
    void denseGemmEveryDtypeTransposeAndSize(int level) {
        atLevel(level, () -> {
            Random rnd = new Random(41 + level);
            int[][] dtypes = {{F32, F32}, {BF16, F32}, {BF16, BF16}};
            float[][] alphaBeta = {{1, 0}, {1, 1}, {-0.5f, 0.75f}, {2.25f, 0}};
            int cases = 0;
            for (int[] d : dtypes) {
                for (int t = 0; t < 4; t++) {
                    for (int m : SIZES) {
                        for (int n : SIZES) {
                            for (int k : SIZES) {
                                float[] ab = alphaBeta[cases % alphaBeta.length];
                                checkGemm(rnd, d[0], d[1], (t & 1) != 0, (t & 2) != 0, m, n, k, ab[0], ab[1], cases % 3);
                                cases++;
                            }
                        }
                    }
                }
            }
            assertEquals(3 * 4 * SIZES.length * SIZES.length * SIZES.length, cases);
        });
    }

    /** Depths past one cache block (odd, so the last bf16 pair is half empty), many row blocks, wide C, odd strides. */
    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2, 3})
    void denseGemmBlockedPaths(int level) {
        atLevel(level, () -> {
            Random rnd = new Random(51 + level);
            for (int[] d : new int[][] {{F32, F32}, {BF16, F32}, {BF16, BF16}}) {
                for (int t = 0; t < 4; t++) {
                    boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                    checkGemm(rnd, d[0], d[1], ta, tb, 40, 33, 1201, 1, 0, 0);
                    checkGemm(rnd, d[0], d[1], ta, tb, 301, 17, 257, 0.5f, -1, 1);
                    checkGemm(rnd, d[0], d[1], ta, tb, 7, 2100, 9, 1, 1, 3);
                    checkGemm(rnd, d[0], d[1], ta, tb, 5, 3, 0, 1, 2, 2); // k = 0: C = beta * C
                }
            }
        });
    }

    /**
     * The depth blocks fix the order of C's sums, so they are the same on every host: sized for a
     * 48 KiB L1d (gemm.cpp's DEPTH_BLOCK_L1D), not the host's. At the f32 levels every element of
     * C must be, bit for bit, the chain the engine documents: per depth block, acc = fma(a, b,
     * acc) over its depth in order from 0, then c = fma(alpha, acc, c). k = 1201 is cut into the
     * fewest equal blocks of at most 512 steps (AVX2's 16-column panels: 401, 401, 399) or 288
     * (AVX-512's 32-column panels: 241 x 4, 237). Sized for a 32 KiB L1d (a Zen 4 or Zen 3
     * host's), they would be 384 and 192 steps at most, and the bits other.
     */
    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2})
    void f32DepthBlocksAreThoseOfA48KiBL1dOnEveryHost(int level) {
        atLevel(level, () -> {
            int m = 20, n = 40, k = 1201;
            int maxSteps = level == panamoe_h.PMOE_ISA_AVX2() ? 512 : 288;
            int blocks = (k + maxSteps - 1) / maxSteps, depth = (k + blocks - 1) / blocks;
            Random rnd = new Random(61 + level);
            float[] a = uniform(rnd, m * k, -1, 1), b = uniform(rnd, k * n, -1, 1);
            float[] expected = new float[m * n];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    float c = 0;
                    for (int p0 = 0; p0 < k; p0 += depth) {
                        float acc = 0;
                        for (int p = p0; p < Math.min(k, p0 + depth); p++)
                            acc = Math.fma(a[i * k + p], b[p * n + j], acc);
                        c = Math.fma(1.0f, acc, c);
                    }
                    expected[i * n + j] = c;
                }
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment c = tensor(arena, F32, new float[m * n]);
                assertOk(LIB.pmoe_gemm(0, 0, m, n, k, 1.0f, tensor(arena, F32, a), k, tensor(arena, F32, b), n, 0.0f, c,
                        n, NO_STREAM), "pmoe_gemm");
                assertExactly("level " + level + ": C against the chain of " + blocks + " depth blocks of " + depth,
                        expected, toFloats(c));
            }
        });
    }

    /**
     * A bf16 C is rounded to nearest even from the exact f32 result, NaN and infinities kept,
     * whether the kernel stores it itself (the whole depth in one block) or through the f32 copy
     * (many blocks): small-integer operands make every sum exact, so the expected bits are known.
     * Row 1 of C holds the ties 257 (-> 256), 259 (-> 260) and -257 (-> -256) plus beta * C.
     */
    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2, 3})
    void bf16OutputIsRoundedToNearestEvenOnEveryPath(int level) {
        atLevel(level, () -> {
            int m = 3, n = 40;
            for (int k : new int[] {4, 1301}) {
                for (float beta : new float[] {0, 1}) {
                    float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
                    a[0] = 1;                   // row 0: b's row 0
                    a[k] = a[k + 1] = 1;        // row 1: b's rows 0 + 1
                    a[2 * k] = 2;               // row 2: twice b's row 0
                    for (int j = 0; j < n; j++) {
                        b[j] = (j % 2 == 0 ? 256 : -256) + (j % 5) * 2;
                        b[n + j] = (j % 2 == 0 ? 1 : -1) * (1 + j % 3); // ties at +-1 and +-3
                        for (int i = 0; i < m; i++) c[i * n + j] = beta == 0 ? Float.NaN : (j % 7) - 3;
                    }
                    b[5] = Float.POSITIVE_INFINITY;
                    b[n + 6] = Float.NaN;
                    float[] got;
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment cs = tensor(arena, BF16, c);
                        assertOk(LIB.pmoe_gemm_bf16(0, 0, m, n, k, 1f, tensor(arena, BF16, a), k, tensor(arena, BF16, b), n,
                                beta, BF16, cs, n, NO_STREAM), "pmoe_gemm_bf16");
                        got = KernelTestSupport.readTensor(cs, BF16);
                    }
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double exact = beta == 0 ? 0 : beta * c[i * n + j];
                            for (int p = 0; p < 2; p++) exact += (double) a[i * k + p] * b[p * n + j];
                            String at = "level " + level + " k=" + k + " beta=" + beta + " C[" + i + "][" + j + "]";
                            if (Double.isNaN(exact)) {
                                assertTrue(Float.isNaN(got[i * n + j]), at + ": NaN expected, got " + got[i * n + j]);
                            } else {
                                assertEquals(KernelTestSupport.roundToBf16((float) exact), got[i * n + j], at);
                            }
                        }
                    }
                }
            }
        });
    }

    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2, 3})
    void groupedNnNtTnEveryDtypeOnRaggedGroups(int level) {
        atLevel(level, () -> {
            Random rnd = new Random(61 + level);
            int[][] kn = {{1, 1}, {7, 5}, {64, 65}, {33, 130}};
            for (int[] sizes : GroupedGemmKernelTest.groupSizes(rnd)) {
                int[] offsets = offsets(sizes);
                int rows = offsets[sizes.length];
                int maxRows = Arrays.stream(sizes).max().orElse(0);
                for (int[] d : kn) {
                    int k = d[0], n = d[1];
                    for (int dtype : new int[] {F32, BF16}) {
                        String what = " dtype=" + dtype + " sizes=" + Arrays.toString(sizes) + " k=" + k + " n=" + n;
                        float[] a = representable(dtype, uniform(rnd, rows * k, -1, 1));
                        float[] b = representable(dtype, uniform(rnd, rows * n, -1, 1));
                        float[][] w = new float[sizes.length][];
                        for (int g = 0; g < w.length; g++) w[g] = representable(dtype, uniform(rnd, k * n, -1, 1));
                        for (boolean transposed : new boolean[] {false, true}) {
                            float[] got = nativeGrouped(dtype, transposed, offsets, k, n, a, w);
                            double[] expected = ReferenceKernels.groupedGemm(offsets, k, n, toDouble(a), toDouble2(w), transposed);
                            double[] magnitude = ReferenceKernels.groupedGemm(offsets, k, n, abs(toDouble(a)),
                                    abs2(toDouble2(w)), transposed);
                            assertClose((transposed ? "nt" : "nn") + what, expected, got,
                                    i -> tolerance(dtype, k, magnitude[i], expected[i]));
                        }
                        for (int outDtype : dtype == F32 ? new int[] {F32} : new int[] {F32, BF16}) {
                            for (float beta : new float[] {0, 1}) {
                                float[][] out = new float[sizes.length][];
                                for (int g = 0; g < out.length; g++) {
                                    out[g] = representable(outDtype, uniform(rnd, k * n, -1, 1));
                                    if (beta == 0) Arrays.fill(out[g], Float.NaN); // beta == 0: out is not read
                                }
                                float[][] got = nativeGroupedTN(dtype, outDtype, offsets, k, n, a, b, beta, out);
                                double[][] expected = ReferenceKernels.groupedGemmTN(offsets, k, n, toDouble(a), toDouble(b),
                                        beta, toDouble2(out));
                                double[][] magnitude = ReferenceKernels.groupedGemmTN(offsets, k, n, abs(toDouble(a)),
                                        abs(toDouble(b)), beta, abs2(toDouble2(out)));
                                for (int g = 0; g < out.length; g++) {
                                    double[] exp = expected[g], mag = magnitude[g];
                                    assertClose("tn out_dtype=" + outDtype + " beta=" + beta + what + " group " + g, exp,
                                            got[g], i -> tolerance(outDtype, maxRows, mag[i], exp[i]));
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    /** Bitwise the same output on repeated runs and with 1, 2 or 3 threads, at each level. */
    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2, 3})
    void deterministicAcrossRunsAndThreadCounts(int level) {
        atLevel(level, () -> {
            Random rnd = new Random(71 + level);
            int m = 257, n = 190, k = 301;
            float[] a = representable(BF16, uniform(rnd, m * k, -1, 1));
            float[] b = representable(BF16, uniform(rnd, k * n, -1, 1));
            float[] c = representable(BF16, uniform(rnd, m * n, -1, 1));
            for (int[] d : new int[][] {{F32, F32}, {BF16, F32}, {BF16, BF16}}) {
                for (int t = 0; t < 4; t++) {
                    boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                    assertDeterministic("gemm dtype=" + d[0] + " c_dtype=" + d[1] + " ta=" + ta + " tb=" + tb, arena -> {
                        MemorySegment as = tensor(arena, d[0], a), bs = tensor(arena, d[0], b), cs = tensor(arena, d[1], c);
                        int status = d[0] == F32
                                ? LIB.pmoe_gemm(ta ? 1 : 0, tb ? 1 : 0, m, n, k, 0.5f, as, ta ? m : k, bs, tb ? k : n, 0.25f,
                                        cs, n, NO_STREAM)
                                : LIB.pmoe_gemm_bf16(ta ? 1 : 0, tb ? 1 : 0, m, n, k, 0.5f, as, ta ? m : k, bs, tb ? k : n,
                                        0.25f, d[1], cs, n, NO_STREAM);
                        assertOk(status, "gemm");
                        return bytes(cs);
                    });
                }
            }
            int[] sizes = {0, 130, 3, 257, 64, 0, 1, 90};
            int[] offsets = offsets(sizes);
            int rows = offsets[sizes.length], gk = 96, gn = 80;
            float[] ga = representable(BF16, uniform(rnd, rows * gk, -1, 1));
            float[] gb = representable(BF16, uniform(rnd, rows * gn, -1, 1));
            float[][] w = new float[sizes.length][];
            for (int g = 0; g < w.length; g++) w[g] = representable(BF16, uniform(rnd, gk * gn, -1, 1));
            for (int dtype : new int[] {F32, BF16}) {
                for (boolean transposed : new boolean[] {false, true}) {
                    assertDeterministic("grouped " + (transposed ? "nt" : "nn") + " dtype=" + dtype,
                            arena -> bytes(tensor(arena, F32, nativeGrouped(dtype, transposed, offsets, gk, gn, ga, w))));
                }
                for (int outDtype : dtype == F32 ? new int[] {F32} : new int[] {F32, BF16}) {
                    assertDeterministic("grouped tn dtype=" + dtype + " out_dtype=" + outDtype, arena -> {
                        float[][] out = nativeGroupedTN(dtype, outDtype, offsets, gk, gn, ga, gb, 1, w);
                        MemorySegment[] segments = new MemorySegment[out.length];
                        for (int g = 0; g < out.length; g++) segments[g] = tensor(arena, F32, out[g]);
                        return bytes(segments);
                    });
                }
            }
        });
    }

    @Test
    void reportsTheFeaturesAndTheLevelInUse() {
        CpuIsa isa = CpuIsa.query(LIB);
        // Without PMOE_CPU_ISA or the system property the best level is in use; the suite sets neither.
        assertEquals(isa.bestLevel(), isa.level(), "level in use vs features " + isa.featureNames());
        assertTrue(isa.has(panamoe_h.PMOE_CPU_AVX2_FMA()), "the library's baseline needs AVX2 and FMA");
    }

    @Test
    void rejectsUnknownLevelsAndNamesWhatTheCpuLacks() {
        assertRejected(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), LIB.pmoe_set_cpu_isa(0), "level", "0");
        assertRejected(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(), LIB.pmoe_set_cpu_isa(4), "level", "4");
        // Levels above the CPU's (none on an AVX512_BF16 host) are refused, naming what it lacks.
        CpuIsa isa = CpuIsa.query(LIB);
        for (int level = isa.bestLevel() + 1; level <= panamoe_h.PMOE_ISA_AVX512_BF16(); level++) {
            assertRejected(panamoe_h.PMOE_ERR_UNSUPPORTED(), LIB.pmoe_set_cpu_isa(level), "CPU lacks", CpuIsa.levelName(level));
            assertEquals(isa.level(), CpuIsa.query(LIB).level(), "a refused level leaves the level in use");
        }
        try (Arena arena = Arena.ofConfined()) {
            assertRejected(panamoe_h.PMOE_ERR_INVALID_ARGUMENT(),
                    LIB.pmoe_cpu_isa(MemorySegment.NULL, arena.allocate(4)), "level_in_use", null);
        }
    }

    /** Child JVM entry: prints the level in use, or why the CPU library would not bind. */
    public static void main(String[] args) {
        try {
            System.out.println("level in use: " + CpuIsa.query(panamoe_h.cpu()).levelName());
        } catch (RuntimeException e) {
            System.out.println("refused: " + e.getMessage());
        }
    }

    /** Output of {@link #main} in a child JVM with PMOE_CPU_ISA = env (null: unset) and extra JVM options. */
    private static String child(String env, String... options) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path")));
        String nativeDir = System.getProperty("panamoe.native.dir");
        if (nativeDir != null) command.add("-Dpanamoe.native.dir=" + nativeDir);
        command.addAll(List.of(options));
        command.add(GemmIsaLevelTest.class.getName());
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().remove("PMOE_CPU_ISA");
        if (env != null) builder.environment().put("PMOE_CPU_ISA", env);
        Process p = builder.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(2, TimeUnit.MINUTES), "child JVM did not finish");
        assertEquals(0, p.exitValue(), output);
        return output;
    }

    @Test
    void environmentVariableAndSystemPropertyChooseTheLevelAtLoad() throws IOException, InterruptedException {
        assertTrue(child("avx2").contains("level in use: avx2"), "PMOE_CPU_ISA=avx2");
        assertTrue(child(null, "-Dpanamoe.cpu.isa=avx2").contains("level in use: avx2"), "-Dpanamoe.cpu.isa=avx2");
        // the property wins over the variable
        assertTrue(child("avx2", "-Dpanamoe.cpu.isa=" + CpuIsa.query(LIB).levelName())
                .contains("level in use: " + CpuIsa.query(LIB).levelName()), "property over variable");
        String bad = child("avx9");
        assertTrue(bad.contains("refused: ") && bad.contains("PMOE_CPU_ISA=avx9 is not a level"), bad);
        String badProperty = child(null, "-Dpanamoe.cpu.isa=sse2");
        assertTrue(badProperty.contains("system property panamoe.cpu.isa") && badProperty.contains("\"sse2\""), badProperty);
    }
}
