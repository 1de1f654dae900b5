package dev.panamoe.ops;

import static java.lang.foreign.MemorySegment.NULL;

import dev.panamoe.bindings.NativeStatus;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.bindings.pmoe_dispatch_config;
import dev.panamoe.bindings.pmoe_router_config;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The reference backend: host memory from {@link Arena}, kernels from an implementation of
 * panamoe.h that works on host pointers — libpanamoe_cpu.so by default, or any other such
 * library (e.g. the CUDA sources built for host execution) via {@link #CpuBackend(panamoe_h)}.
 *
 * <p>Before each native call it checks shapes, dtypes and devices ({@link KernelArgs}) and, since
 * it can read host memory, the values of the index tensors the kernel cannot check itself
 * (expert ids, remap entries, the row count of grouped GEMM offsets).
 */
public final class CpuBackend implements Backend {
    private static volatile CpuBackend instance;

    private final panamoe_h lib;

    public CpuBackend(panamoe_h lib) {
        this.lib = Checks.notNull("lib", lib);
    }

    /** The backend of libpanamoe_cpu.so (loaded on first use). */
    public static CpuBackend get() {
        CpuBackend b = instance;
        if (b == null) {
            synchronized (CpuBackend.class) {
                b = instance;
                if (b == null) {
                    b = new CpuBackend(panamoe_h.cpu());
                    instance = b;
                }
            }
        }
        return b;
    }

    public panamoe_h library() {
        return lib;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public Arena newArena(boolean shared) {
        return shared ? Arena.ofShared() : Arena.ofConfined();
    }

    @Override
    public void setNumThreads(int n) {
        Checks.atLeast("n", n, 1);
        check(lib.pmoe_set_num_threads(n), "pmoe_set_num_threads");
    }

    @Override
    public int numThreads() {
        try (Arena call = Arena.ofConfined()) {
            MemorySegment n = call.allocate(ValueLayout.JAVA_INT);
            check(lib.pmoe_get_num_threads(n), "pmoe_get_num_threads");
            return n.get(ValueLayout.JAVA_INT, 0);
        }
    }

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        KernelArgs.GemmSizes s = KernelArgs.gemm(device(), transA, transB, a, b, c);
        check(lib.pmoe_gemm(flag(transA), flag(transB), s.m(), s.n(), s.k(), alpha, a.data(), a.dim(1), b.data(),
                b.dim(1), beta, c.data(), c.dim(1), NULL), "pmoe_gemm");
    }

    @Override
    public void groupedGemmNn(Tensor offsets, Tensor a, TensorTable weights, Tensor c) {
        KernelArgs.groupedGemm(device(), offsets, a, weights, false, c);
        checkLastOffset(offsets, a);
        check(lib.pmoe_grouped_gemm_nn(weights.size(), offsets.data(), a.dim(1), c.dim(1), a.data(),
                weights.addresses(), c.data(), NULL), "pmoe_grouped_gemm_nn");
    }

    @Override
    public void groupedGemmNt(Tensor offsets, Tensor a, TensorTable weights, Tensor c) {
        KernelArgs.groupedGemm(device(), offsets, a, weights, true, c);
        checkLastOffset(offsets, a);
        check(lib.pmoe_grouped_gemm_nt(weights.size(), offsets.data(), a.dim(1), c.dim(1), a.data(),
                weights.addresses(), c.data(), NULL), "pmoe_grouped_gemm_nt");
    }

    @Override
    public void groupedGemmTn(Tensor offsets, Tensor a, Tensor b, float beta, TensorTable out) {
        KernelArgs.groupedGemmTn(device(), offsets, a, b, out);
        checkLastOffset(offsets, a);
        check(lib.pmoe_grouped_gemm_tn(out.size(), offsets.data(), a.dim(1), b.dim(1), a.data(), b.data(), beta,
                out.addresses(), NULL), "pmoe_grouped_gemm_tn");
    }

    @Override
    public void routerForward(ScoreFunction score, boolean renormalize, Tensor logits, Tensor scores,
            Tensor topkWeights, Tensor topkIds) {
        KernelArgs.routerForward(device(), logits, scores, topkWeights, topkIds);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment cfg = routerConfig(call, score, renormalize, logits, topkIds);
            check(lib.pmoe_router_forward(cfg, logits.data(), scores.data(), topkWeights.data(), topkIds.data(), NULL),
                    "pmoe_router_forward");
        }
    }

    @Override
    public void routerBackward(ScoreFunction score, boolean renormalize, Tensor scores, Tensor topkIds,
            Tensor gradTopkWeights, Tensor gradScores, Tensor gradLogits) {
        KernelArgs.routerBackward(device(), scores, topkIds, gradTopkWeights, gradScores, gradLogits);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment cfg = routerConfig(call, score, renormalize, scores, topkIds);
            check(lib.pmoe_router_backward(cfg, scores.data(), topkIds.data(), gradTopkWeights.data(),
                    gradScores == null ? NULL : gradScores.data(), gradLogits.data(), NULL), "pmoe_router_backward");
        }
    }

    @Override
    public void auxLossForward(Tensor scores, Tensor topkIds, float coeff, Tensor loss, Tensor expertCounts) {
        KernelArgs.auxLossForward(device(), scores, topkIds, loss, expertCounts);
        checkIds("topkIds", topkIds, scores.dim(1));
        check(lib.pmoe_aux_loss_forward(scores.dim(0), scores.dim(1), topkIds.dim(1), scores.data(), topkIds.data(),
                coeff, loss.data(), expertCounts.data(), NULL), "pmoe_aux_loss_forward");
    }

    @Override
    public void auxLossBackward(int topK, Tensor expertCounts, float coeff, float gradLoss, Tensor gradScores) {
        KernelArgs.auxLossBackward(device(), topK, expertCounts, gradScores);
        check(lib.pmoe_aux_loss_backward(gradScores.dim(0), gradScores.dim(1), topK, expertCounts.data(), coeff,
                gradLoss, gradScores.data(), NULL), "pmoe_aux_loss_backward");
    }

    @Override
    public void zLossForward(Tensor logits, float coeff, Tensor loss) {
        KernelArgs.zLossForward(device(), logits, loss);
        check(lib.pmoe_z_loss_forward(logits.dim(0), logits.dim(1), logits.data(), coeff, loss.data(), NULL),
                "pmoe_z_loss_forward");
    }

    @Override
    public void zLossBackward(Tensor logits, float coeff, float gradLoss, Tensor gradLogits) {
        KernelArgs.zLossBackward(device(), logits, gradLogits);
        check(lib.pmoe_z_loss_backward(logits.dim(0), logits.dim(1), logits.data(), coeff, gradLoss,
                gradLogits.data(), NULL), "pmoe_z_loss_backward");
    }

    @Override
    public void dispatchPlan(Tensor topkIds, Tensor topkWeights, Tensor remap, int logicalExperts, int capacity,
            DropPolicy dropPolicy, Tensor expertCounts, Tensor expertOffsets, Tensor slotPosition, Tensor sortedSlot) {
        int physical = KernelArgs.dispatchPlan(device(), topkIds, topkWeights, remap, logicalExperts, capacity,
                dropPolicy, expertCounts, expertOffsets, slotPosition, sortedSlot);
        checkIds("topkIds", topkIds, logicalExperts);
        if (remap != null) {
            checkIds("remap", remap, physical);
        }
        try (Arena call = Arena.ofConfined()) {
            MemorySegment cfg = pmoe_dispatch_config.allocate(call);
            pmoe_dispatch_config.tokens(cfg, topkIds.dim(0));
            pmoe_dispatch_config.top_k(cfg, topkIds.dim(1));
            pmoe_dispatch_config.logical_experts(cfg, logicalExperts);
            pmoe_dispatch_config.physical_experts(cfg, physical);
            pmoe_dispatch_config.capacity(cfg, capacity);
            pmoe_dispatch_config.drop_policy(cfg, dropPolicy.abiCode());
            check(lib.pmoe_dispatch_plan(cfg, topkIds.data(), topkWeights.data(), remap == null ? NULL : remap.data(),
                    expertCounts.data(), expertOffsets.data(), slotPosition.data(), sortedSlot.data(), NULL),
                    "pmoe_dispatch_plan");
        }
    }

    @Override
    public void permute(Tensor x, Tensor sortedSlot, int topK, Tensor out) {
        KernelArgs.permute(device(), x, sortedSlot, topK, out);
        check(lib.pmoe_permute(x.dtype().abiCode(), x.dim(0), topK, out.dim(0), x.dim(1), x.data(), sortedSlot.data(),
                out.data(), NULL), "pmoe_permute");
    }

    @Override
    public void permuteBackward(Tensor gradOut, Tensor slotPosition, Tensor gradX) {
        KernelArgs.rowsAndTokens(device(), "gradOut", gradOut, "gradX", gradX, slotPosition);
        check(lib.pmoe_permute_backward(gradX.dtype().abiCode(), gradX.dim(0), slotPosition.dim(1), gradOut.dim(0),
                gradX.dim(1), gradOut.data(), slotPosition.data(), gradX.data(), NULL), "pmoe_permute_backward");
    }

    @Override
    public void combine(Tensor expertOut, Tensor topkWeights, Tensor slotPosition, Tensor y) {
        KernelArgs.combine(device(), expertOut, topkWeights, slotPosition, y);
        check(lib.pmoe_combine(y.dtype().abiCode(), y.dim(0), slotPosition.dim(1), expertOut.dim(0), y.dim(1),
                expertOut.data(), topkWeights.data(), slotPosition.data(), y.data(), NULL), "pmoe_combine");
    }

    @Override
    public void combineBackward(Tensor gradY, Tensor expertOut, Tensor topkWeights, Tensor slotPosition,
            Tensor gradExpertOut, Tensor gradWeights) {
        KernelArgs.combineBackward(device(), gradY, expertOut, topkWeights, slotPosition, gradExpertOut, gradWeights);
        check(lib.pmoe_combine_backward(gradY.dtype().abiCode(), gradY.dim(0), slotPosition.dim(1), expertOut.dim(0),
                gradY.dim(1), gradY.data(), expertOut.data(), topkWeights.data(), slotPosition.data(),
                gradExpertOut.data(), gradWeights.data(), NULL), "pmoe_combine_backward");
    }

    @Override
    public void activationForward(Activation act, Tensor in, Tensor out) {
        KernelArgs.activation(device(), act, in, "out", out);
        check(lib.pmoe_activation_forward(act.abiCode(), out.dim(0), out.dim(1), in.data(), out.data(), NULL),
                "pmoe_activation_forward");
    }

    @Override
    public void activationBackward(Activation act, Tensor in, Tensor gradOut, Tensor gradIn) {
        KernelArgs.activation(device(), act, in, "gradOut", gradOut);
        Checks.tensor("gradIn", gradIn, device(), DType.F32, in.shape());
        check(lib.pmoe_activation_backward(act.abiCode(), gradOut.dim(0), gradOut.dim(1), in.data(), gradOut.data(),
                gradIn.data(), NULL), "pmoe_activation_backward");
    }

    @Override
    public long findNonFinite(Tensor x) {
        Checks.tensorOfAnyShape("x", x, device(), DType.F32);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment index = call.allocate(ValueLayout.JAVA_LONG);
            check(lib.pmoe_find_nonfinite(x.numel(), x.data(), index, NULL), "pmoe_find_nonfinite");
            return index.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    private MemorySegment routerConfig(Arena call, ScoreFunction score, boolean renormalize, Tensor scores,
            Tensor topkIds) {
        Checks.notNull("score", score);
        MemorySegment cfg = pmoe_router_config.allocate(call);
        pmoe_router_config.tokens(cfg, scores.dim(0));
        pmoe_router_config.experts(cfg, scores.dim(1));
        pmoe_router_config.top_k(cfg, topkIds.dim(1));
        pmoe_router_config.score_func(cfg, score.abiCode());
        pmoe_router_config.renormalize(cfg, flag(renormalize));
        pmoe_router_config.reserved(cfg, 0);
        return cfg;
    }

    /** Every value of an i32 index tensor must lie in [0, bound). */
    private static void checkIds(String arg, Tensor ids, int bound) {
        MemorySegment s = ids.data();
        for (long i = 0; i < ids.numel(); i++) {
            int id = s.getAtIndex(ValueLayout.JAVA_INT, i);
            if (id < 0 || id >= bound) {
                throw new IllegalArgumentException(arg + ": value " + id + " at flat index " + i + " is outside [0, " + bound + ")");
            }
        }
    }

    /** The kernel cannot know how many rows `a` has: the groups must end within them. */
    private static void checkLastOffset(Tensor offsets, Tensor a) {
        int last = offsets.data().getAtIndex(ValueLayout.JAVA_INT, offsets.numel() - 1);
        if (last > a.dim(0)) {
            throw new IllegalArgumentException("offsets: last offset " + last + " exceeds the " + a.dim(0) + " rows of a");
        }
    }

    private void check(int status, String function) {
        NativeStatus.check(lib, status, function);
    }

    private static int flag(boolean b) {
        return b ? 1 : 0;
    }
}
