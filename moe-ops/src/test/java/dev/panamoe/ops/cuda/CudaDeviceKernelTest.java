package dev.panamoe.ops.cuda;

import static dev.panamoe.ops.cuda.Harness.CPU;
import static dev.panamoe.ops.cuda.Harness.F32;
import static dev.panamoe.ops.cuda.Harness.F32_EPS;
import static dev.panamoe.ops.cuda.Harness.assertClose;
import static dev.panamoe.ops.cuda.Harness.assertOk;
import static dev.panamoe.ops.cuda.Harness.assertSameInts;
import static dev.panamoe.ops.cuda.Harness.floats;
import static dev.panamoe.ops.cuda.Harness.gaussian;
import static dev.panamoe.ops.cuda.Harness.ints;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.panamoe.bindings.NativeLibraries;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.bindings.cudart_h;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.bindings.pmoe_dispatch_config;
import dev.panamoe.bindings.pmoe_router_config;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * libpanamoe_cuda.so on a real GPU against the CPU library, outputs poisoned beforehand. Skipped,
 * with the reason, where there is no CUDA runtime or device (the build machines and CI).
 */
@Tag("gpu")
class CudaDeviceKernelTest {
    private static String noDevice;
    private static panamoe_h cuda;
    private static MethodHandle malloc, free, memcpy, memset, synchronize;
    private final List<MemorySegment> allocations = new ArrayList<>();

    /** Why the GPU tests cannot run here, or null when a device is present. */
    private static String noDevice() {
        try (Arena arena = Arena.ofConfined()) {
            NativeLibraries.cudart();
            MemorySegment count = arena.allocate(JAVA_INT);
            int status = cudart_h.cudaGetDeviceCount(count);
            if (status != cudart_h.cudaSuccess)
                return "no CUDA device: cudaGetDeviceCount failed with " + status + " ("
                        + cudart_h.cudaGetErrorString(status).getString(0) + ")";
            if (count.get(JAVA_INT, 0) == 0) return "no CUDA device: cudaGetDeviceCount found none";
            return null;
        } catch (NativeLibraryUnavailableException e) {
            return "no CUDA runtime: " + e.getMessage();
        }
    }

    @SuppressWarnings("restricted")
    private static MethodHandle cudart(String name, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(NativeLibraries.cudart().lookup().find(name).orElseThrow(),
                descriptor);
    }

    @BeforeAll
    static void openDevice() {
        noDevice = noDevice();
        if (noDevice != null) return;
        cuda = panamoe_h.open(NativeLibraries.panamoeCuda());
        malloc = cudart("cudaMalloc", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        free = cudart("cudaFree", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        memcpy = cudart("cudaMemcpy", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT));
        memset = cudart("cudaMemset", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
        synchronize = cudart("cudaDeviceSynchronize", FunctionDescriptor.of(JAVA_INT));
    }

    @BeforeEach
    void requireDevice() {
        Assumptions.assumeTrue(noDevice == null, () -> "needs a GPU, skipped: " + noDevice);
    }

    @AfterEach
    void release() throws Throwable {
        for (MemorySegment p : allocations) check((int) free.invokeExact(p), "cudaFree");
        allocations.clear();
    }

    private static void check(int status, String call) {
        if (status != 0) throw new AssertionError(call + " failed with cudaError " + status);
    }

    /** Device copy of a host buffer (or, with copy false, device memory of its size poisoned with 0xff). */
    private MemorySegment device(MemorySegment host, boolean copy) throws Throwable {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment slot = arena.allocate(ADDRESS);
            check((int) malloc.invokeExact(slot, Math.max(16, host.byteSize())), "cudaMalloc");
            MemorySegment p = slot.get(ADDRESS, 0).reinterpret(host.byteSize());
            allocations.add(p);
            if (copy) check((int) memcpy.invokeExact(p, host, host.byteSize(), 1), "cudaMemcpy H2D");
            else check((int) memset.invokeExact(p, 0xff, host.byteSize()), "cudaMemset");
            return p;
        }
    }

    private static MemorySegment toHost(Arena arena, MemorySegment device) throws Throwable {
        MemorySegment host = arena.allocate(Math.max(16, device.byteSize()), 16).asSlice(0, device.byteSize());
        check((int) synchronize.invokeExact(), "kernels");
        check((int) memcpy.invokeExact(host, device, device.byteSize(), 2), "cudaMemcpy D2H");
        return host;
    }

    @Test
    void routerDispatchAndPermuteMatchTheCpu() throws Throwable {
        int tokens = 4096, experts = 64, topK = 8, hidden = 256, slots = tokens * topK;
        Random rnd = new Random(21);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cfg = pmoe_router_config.allocate(arena);
            pmoe_router_config.tokens(cfg, tokens);
            pmoe_router_config.experts(cfg, experts);
            pmoe_router_config.top_k(cfg, topK);
            pmoe_router_config.score_func(cfg, panamoe_h.PMOE_SCORE_SOFTMAX());
            pmoe_router_config.renormalize(cfg, 1);
            MemorySegment logits = floats(arena, gaussian(rnd, tokens * experts, 2));
            MemorySegment scores = floats(arena, new float[tokens * experts]), weights = floats(arena, new float[slots]);
            MemorySegment ids = ints(arena, new int[slots]);
            assertOk(CPU, CPU.pmoe_router_forward(cfg, logits, scores, weights, ids, Harness.NO_STREAM), "cpu router");
            MemorySegment dScores = device(scores, false), dWeights = device(weights, false), dIds = device(ids, false);
            assertOk(cuda, cuda.pmoe_router_forward(cfg, device(logits, true), dScores, dWeights, dIds,
                    MemorySegment.NULL), "cuda router");
            assertSameInts("router topk_ids", ids, toHost(arena, dIds));
            assertClose("router scores", scores, toHost(arena, dScores), F32, 16 * F32_EPS, 1e-9);
            assertClose("router weights", weights, toHost(arena, dWeights), F32, 16 * F32_EPS, 1e-9);

            MemorySegment plan = pmoe_dispatch_config.allocate(arena);
            pmoe_dispatch_config.tokens(plan, tokens);
            pmoe_dispatch_config.top_k(plan, topK);
            pmoe_dispatch_config.logical_experts(plan, experts);
            pmoe_dispatch_config.physical_experts(plan, experts);
            pmoe_dispatch_config.capacity(plan, slots / experts);
            pmoe_dispatch_config.drop_policy(plan, panamoe_h.PMOE_DROP_BY_PROBABILITY());
            MemorySegment[] out = {ints(arena, new int[experts]), ints(arena, new int[experts + 1]),
                    ints(arena, new int[slots]), ints(arena, new int[slots])};
            assertOk(CPU, CPU.pmoe_dispatch_plan(plan, ids, weights, MemorySegment.NULL, out[0], out[1], out[2], out[3],
                    Harness.NO_STREAM), "cpu dispatch");
            MemorySegment[] dOut = new MemorySegment[4];
            for (int i = 0; i < 4; i++) dOut[i] = device(out[i], false);
            MemorySegment dWeightsIn = device(weights, true);
            assertOk(cuda, cuda.pmoe_dispatch_plan(plan, device(ids, true), dWeightsIn, MemorySegment.NULL, dOut[0],
                    dOut[1], dOut[2], dOut[3], MemorySegment.NULL), "cuda dispatch");
            for (int i = 0; i < 4; i++) assertSameInts("dispatch output " + i, out[i], toHost(arena, dOut[i]));

            int rows = out[1].getAtIndex(JAVA_INT, experts);
            MemorySegment x = floats(arena, gaussian(rnd, tokens * hidden, 1));
            MemorySegment permuted = floats(arena, new float[rows * hidden]);
            assertOk(CPU, CPU.pmoe_permute(F32, tokens, topK, rows, hidden, x, out[3], permuted, Harness.NO_STREAM),
                    "cpu permute");
            MemorySegment dPermuted = device(permuted, false);
            assertOk(cuda, cuda.pmoe_permute(F32, tokens, topK, rows, hidden, device(x, true), dOut[3], dPermuted,
                    MemorySegment.NULL), "cuda permute");
            assertClose("permute", permuted, toHost(arena, dPermuted), F32, 0, 0);

            MemorySegment y = floats(arena, new float[tokens * hidden]);
            assertOk(CPU, CPU.pmoe_combine(F32, tokens, topK, rows, hidden, permuted, weights, out[2], y,
                    Harness.NO_STREAM), "cpu combine");
            MemorySegment dY = device(y, false);
            assertOk(cuda, cuda.pmoe_combine(F32, tokens, topK, rows, hidden, dPermuted, dWeightsIn, dOut[2], dY,
                    MemorySegment.NULL), "cuda combine");
            assertClose("combine", y, toHost(arena, dY), F32, 16 * F32_EPS, 1e-6);
        }
    }

    /** The tensor-core path on hardware: confirms the mma / ldmatrix fragment layouts the harness emulates. */
    @Test
    @SuppressWarnings("restricted")
    void tensorCoreGroupedGemmMatchesTheCpu() throws Throwable {
        int[] sizes = {0, 300, 17, 1000, 64};
        int k = 256, n = 136, groups = sizes.length;
        int[] offsets = new int[groups + 1];
        for (int g = 0; g < groups; g++) offsets[g + 1] = offsets[g] + sizes[g];
        int rows = offsets[groups];
        Random rnd = new Random(22);
        try (Arena arena = Arena.ofConfined()) {
            float[] a = Harness.bf16Values(gaussian(rnd, rows * k, 1));
            MemorySegment[] wf = new MemorySegment[groups], wd = new MemorySegment[groups];
            for (int g = 0; g < groups; g++) {
                float[] w = Harness.bf16Values(gaussian(rnd, k * n, 1));
                wf[g] = floats(arena, w);
                wd[g] = device(Harness.tensor(arena, Harness.BF16, w), true);
            }
            MemorySegment off = ints(arena, offsets), expected = floats(arena, new float[rows * n]);
            assertOk(CPU, CPU.pmoe_grouped_gemm_nn(groups, off, k, n, floats(arena, a), Harness.pointers(arena, wf),
                    expected, Harness.NO_STREAM), "cpu grouped gemm");
            MemorySegment c = device(Harness.tensor(arena, Harness.BF16, new float[rows * n]), false);
            MethodHandle h = Linker.nativeLinker().downcallHandle(
                    cuda.library().lookup().find("pmoe_grouped_gemm_nn_bf16").orElseThrow(),
                    FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                            ADDRESS));
            int status = (int) h.invokeExact(groups, device(off, true), k, n,
                    device(Harness.tensor(arena, Harness.BF16, a), true), device(Harness.pointers(arena, wd), true), c,
                    MemorySegment.NULL);
            assertOk(cuda, status, "pmoe_grouped_gemm_nn_bf16");
            float[] want = expected.toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT);
            float[] got = Harness.read(toHost(arena, c), Harness.BF16);
            double accumulation = 2 * (k + 2) * F32_EPS * 4 * k;
            Harness.assertClose("tensor-core grouped gemm", want, got,
                    i -> Harness.BF16_EPS * Math.abs(want[i]) + accumulation);
        }
    }

    /**
     * nt and tn on hardware (k-major B fragments, .trans A fragments, the f32 epilogue with beta), on a shape with
     * k and n not multiples of 8 (element-wise staging and stores) and one that is, against the CPU's f32 GEMMs of
     * the same bf16 values.
     */
    @Test
    void tensorCoreGroupedGemmNtAndTnMatchTheCpu() throws Throwable {
        int[] sizes = {0, 300, 17, 1000, 64};
        int groups = sizes.length;
        int[] offsets = new int[groups + 1];
        for (int g = 0; g < groups; g++) offsets[g + 1] = offsets[g] + sizes[g];
        int rows = offsets[groups];
        Random rnd = new Random(23);
        for (int[] kn : new int[][] {{256, 136}, {203, 77}}) {
            int k = kn[0], n = kn[1];
            try (Arena arena = Arena.ofConfined()) {
                float[] a = Harness.bf16Values(gaussian(rnd, rows * k, 1)), b = Harness.bf16Values(gaussian(rnd, rows * n, 1));
                MemorySegment off = ints(arena, offsets), dOff = device(off, true);
                MemorySegment dA = device(Harness.tensor(arena, Harness.BF16, a), true);
                // nt: c[rows, n] = a[rows, k] * W_g^T, W_g stored [n, k]
                MemorySegment[] wf = new MemorySegment[groups], wd = new MemorySegment[groups];
                for (int g = 0; g < groups; g++) {
                    float[] w = Harness.bf16Values(gaussian(rnd, n * k, 1));
                    wf[g] = floats(arena, w);
                    wd[g] = device(Harness.tensor(arena, Harness.BF16, w), true);
                }
                MemorySegment expected = floats(arena, new float[rows * n]);
                assertOk(CPU, CPU.pmoe_grouped_gemm_nt(groups, off, k, n, floats(arena, a), Harness.pointers(arena, wf),
                        expected, Harness.NO_STREAM), "cpu grouped gemm nt");
                MemorySegment c = device(Harness.tensor(arena, Harness.BF16, new float[rows * n]), false);
                assertOk(cuda, cuda.pmoe_grouped_gemm_nt_bf16(groups, dOff, k, n, dA, device(Harness.pointers(arena, wd), true),
                        c, MemorySegment.NULL), "pmoe_grouped_gemm_nt_bf16");
                float[] want = expected.toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT);
                float[] got = Harness.read(toHost(arena, c), Harness.BF16);
                double accumulation = 2 * (k + 2) * F32_EPS * 4 * k;
                Harness.assertClose("tensor-core grouped gemm nt k=" + k + " n=" + n, want, got,
                        i -> Harness.BF16_EPS * Math.abs(want[i]) + accumulation);
                // tn: out[g][k, n] = out[g] + a_g^T * b_g into f32
                MemorySegment[] outCpu = new MemorySegment[groups], outDev = new MemorySegment[groups];
                for (int g = 0; g < groups; g++) {
                    MemorySegment init = floats(arena, gaussian(rnd, k * n, 1));
                    outDev[g] = device(init, true);
                    outCpu[g] = init;
                }
                assertOk(CPU, CPU.pmoe_grouped_gemm_tn(groups, off, k, n, floats(arena, a), floats(arena, b), 1f,
                        Harness.pointers(arena, outCpu), Harness.NO_STREAM), "cpu grouped gemm tn");
                assertOk(cuda, cuda.pmoe_grouped_gemm_tn_bf16(groups, dOff, k, n, dA,
                        device(Harness.tensor(arena, Harness.BF16, b), true), 1f, F32, device(Harness.pointers(arena, outDev), true),
                        MemorySegment.NULL), "pmoe_grouped_gemm_tn_bf16");
                for (int g = 0; g < groups; g++) {
                    double acc = 2 * (sizes[g] + 2) * F32_EPS * 4 * Math.max(1, sizes[g]) + 1e-6;
                    assertClose("tensor-core grouped gemm tn k=" + k + " n=" + n + " group " + g, outCpu[g],
                            toHost(arena, outDev[g]), F32, 0, acc);
                }
            }
        }
    }

    /**
     * pmoe_gemm_bf16 on hardware where it runs on the tensor-core kernel as one group (nn, nt and tn: the tile list
     * stored by a kernel parameter, alpha, an f32 output accumulated with beta = 1 or a bf16 one), on a shape with
     * aligned rows and one without, against the CPU library's pmoe_gemm_bf16 on the same values.
     */
    @Test
    void tensorCoreDenseGemmMatchesTheCpu() throws Throwable {
        Random rnd = new Random(24);
        for (int[] mnk : new int[][] {{300, 136, 256}, {77, 203, 45}}) {
            int m = mnk[0], n = mnk[1], k = mnk[2];
            for (int t = 0; t < 3; t++) {
                int ta = t == 2 ? 1 : 0, tb = t == 1 ? 1 : 0, lda = ta == 1 ? m : k, ldb = tb == 1 ? k : n;
                for (int cDtype : new int[] {F32, Harness.BF16}) {
                    float beta = cDtype == F32 ? 1f : 0f;
                    String what = "pmoe_gemm_bf16 m=" + m + " n=" + n + " k=" + k + " ta=" + ta + " tb=" + tb + " c_dtype=" + cDtype;
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment a = Harness.tensor(arena, Harness.BF16, gaussian(rnd, m * k, 1));
                        MemorySegment b = Harness.tensor(arena, Harness.BF16, gaussian(rnd, k * n, 1));
                        MemorySegment c0 = Harness.tensor(arena, cDtype, gaussian(rnd, m * n, 1));
                        MemorySegment expected = arena.allocate(c0.byteSize(), 16).copyFrom(c0);
                        assertOk(CPU, CPU.pmoe_gemm_bf16(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, beta, cDtype, expected, n,
                                Harness.NO_STREAM), what + " (cpu)");
                        MemorySegment c = device(c0, true);
                        assertOk(cuda, cuda.pmoe_gemm_bf16(ta, tb, m, n, k, 0.7f, device(a, true), lda, device(b, true), ldb,
                                beta, cDtype, c, n, MemorySegment.NULL), what);
                        float[] want = Harness.read(expected, cDtype), got = Harness.read(toHost(arena, c), cDtype);
                        double accumulation = 2 * (k + 2) * F32_EPS * 4 * k, rounding = cDtype == F32 ? 0 : 2 * Harness.BF16_EPS;
                        Harness.assertClose(what, want, got, i -> rounding * Math.abs(want[i]) + accumulation);
                    }
                }
            }
        }
    }
}
