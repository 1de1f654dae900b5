package dev.panamoe.ops;

import static java.lang.foreign.MemorySegment.NULL;

import dev.panamoe.bindings.NativeStatus;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.bindings.pmoe_dispatch_config;
import dev.panamoe.bindings.pmoe_router_config;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.function.ToIntFunction;

/**
 * A backend over one implementation of panamoe.h — the CPU library, or the CUDA library on one
 * stream: the typed calls of {@link Backend}, shared by {@link CpuBackend} and
 * {@link CudaBackend}, which supply the memory and the stream.
 *
 * <p>Before each native call it checks shapes, dtypes and devices ({@link KernelArgs},
 * {@link DenseArgs}), and, where {@link #checksValuesOnHost()}, the values of the index tensors
 * the kernels cannot check themselves (expert ids, remap entries, the row count of grouped GEMM
 * offsets), read through the tensors' host accessors. On a device each such read is a host
 * synchronisation, so there they run only in the debug mode.
 */
abstract class NativeBackend implements Backend {
    private final panamoe_h lib;
    private final boolean valueChecks;
    private final HostSyncs syncs = new HostSyncs();

    NativeBackend(panamoe_h lib, boolean valueChecks) {
        this.lib = Checks.notNull("lib", lib);
        this.valueChecks = valueChecks;
    }

    /**
     * The debug mode of the device backends: -Dpanamoe.cuda.checkInputs=true, or else
     * PMOE_CUDA_CHECK_INPUTS set and not "0" (as the CUDA library reads it). See
     * {@link Backend#checksValuesOnHost()}.
     */
    static boolean deviceDebugChecks() {
        String property = System.getProperty("panamoe.cuda.checkInputs");
        if (property != null) {
            return property.equals("true") || property.equals("1");
        }
        String v = System.getenv("PMOE_CUDA_CHECK_INPUTS");
        return v != null && !v.isEmpty() && !v.equals("0");
    }

    public panamoe_h library() {
        return lib;
    }

    /** The host synchronisations this backend's calls and tensors made (none on the CPU). */
    public HostSyncs hostSyncs() {
        return syncs;
    }

    @Override
    public boolean checksValuesOnHost() {
        return valueChecks;
    }

    /**
     * The stream the kernels run on (NULL on the CPU). A GPU backend also makes its device
     * current on the calling thread here (CUDA's current device is per thread).
     */
    abstract MemorySegment stream();

    /** {@link #stream()} for a native call that queues work on it: the last argument of each call. */
    private MemorySegment queue() {
        syncs.enqueued();
        return stream();
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
        if (a.dtype() == DType.BF16) {
            check(lib.pmoe_gemm_bf16(flag(transA), flag(transB), s.m(), s.n(), s.k(), alpha, a.data(), a.dim(1),
                    b.data(), b.dim(1), beta, c.dtype().abiCode(), c.data(), c.dim(1), queue()), "pmoe_gemm_bf16");
            return;
        }
        check(lib.pmoe_gemm(flag(transA), flag(transB), s.m(), s.n(), s.k(), alpha, a.data(), a.dim(1), b.data(),
                b.dim(1), beta, c.data(), c.dim(1), queue()), "pmoe_gemm");
    }

    @Override
    public void groupedGemmNn(Tensor offsets, Tensor a, TensorTable weights, Tensor c) {
        KernelArgs.groupedGemm(device(), offsets, a, weights, false, c);
        checkLastOffset(offsets, a);
        if (a.dtype() == DType.BF16) {
            check(lib.pmoe_grouped_gemm_nn_bf16(weights.size(), offsets.data(), a.dim(1), c.dim(1), a.data(),
                    weights.addresses(), c.data(), queue()), "pmoe_grouped_gemm_nn_bf16");
            return;
        }
        check(lib.pmoe_grouped_gemm_nn(weights.size(), offsets.data(), a.dim(1), c.dim(1), a.data(),
                weights.addresses(), c.data(), queue()), "pmoe_grouped_gemm_nn");
    }

    @Override
    public void groupedGemmNt(Tensor offsets, Tensor a, TensorTable weights, Tensor c) {
        KernelArgs.groupedGemm(device(), offsets, a, weights, true, c);
        checkLastOffset(offsets, a);
        if (a.dtype() == DType.BF16) {
            check(lib.pmoe_grouped_gemm_nt_bf16(weights.size(), offsets.data(), a.dim(1), c.dim(1), a.data(),
                    weights.addresses(), c.data(), queue()), "pmoe_grouped_gemm_nt_bf16");
            return;
        }
        check(lib.pmoe_grouped_gemm_nt(weights.size(), offsets.data(), a.dim(1), c.dim(1), a.data(),
                weights.addresses(), c.data(), queue()), "pmoe_grouped_gemm_nt");
    }

    @Override
    public void groupedGemmTn(Tensor offsets, Tensor a, Tensor b, float beta, TensorTable out) {
        KernelArgs.groupedGemmTn(device(), offsets, a, b, out);
        checkLastOffset(offsets, a);
        if (a.dtype() == DType.BF16) {
            check(lib.pmoe_grouped_gemm_tn_bf16(out.size(), offsets.data(), a.dim(1), b.dim(1), a.data(), b.data(),
                    beta, out.dtype().abiCode(), out.addresses(), queue()), "pmoe_grouped_gemm_tn_bf16");
            return;
        }
        check(lib.pmoe_grouped_gemm_tn(out.size(), offsets.data(), a.dim(1), b.dim(1), a.data(), b.data(), beta,
                out.addresses(), queue()), "pmoe_grouped_gemm_tn");
    }

    @Override
    public void routerForward(ScoreFunction score, boolean renormalize, Tensor logits, Tensor scores,
            Tensor topkWeights, Tensor topkIds) {
        KernelArgs.routerForward(device(), logits, scores, topkWeights, topkIds);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment cfg = routerConfig(call, score, renormalize, logits, topkIds);
            check(lib.pmoe_router_forward(cfg, logits.data(), scores.data(), topkWeights.data(), topkIds.data(), queue()),
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
                    gradScores == null ? NULL : gradScores.data(), gradLogits.data(), queue()),
                    "pmoe_router_backward");
        }
    }

    @Override
    public void auxLossForward(Tensor scores, Tensor topkIds, float coeff, Tensor loss, Tensor expertCounts) {
        KernelArgs.auxLossForward(device(), scores, topkIds, loss, expertCounts);
        checkIds("topkIds", topkIds, scores.dim(1));
        check(lib.pmoe_aux_loss_forward(scores.dim(0), scores.dim(1), topkIds.dim(1), scores.data(), topkIds.data(),
                coeff, loss.data(), expertCounts.data(), queue()), "pmoe_aux_loss_forward");
    }

    @Override
    public void auxLossBackward(int topK, Tensor expertCounts, float coeff, float gradLoss, Tensor gradScores) {
        KernelArgs.auxLossBackward(device(), topK, expertCounts, gradScores);
        check(lib.pmoe_aux_loss_backward(gradScores.dim(0), gradScores.dim(1), topK, expertCounts.data(), coeff,
                gradLoss, gradScores.data(), queue()), "pmoe_aux_loss_backward");
    }

    @Override
    public void zLossForward(Tensor logits, float coeff, Tensor loss) {
        KernelArgs.zLossForward(device(), logits, loss);
        check(lib.pmoe_z_loss_forward(logits.dim(0), logits.dim(1), logits.data(), coeff, loss.data(), queue()),
                "pmoe_z_loss_forward");
    }

    @Override
    public void zLossBackward(Tensor logits, float coeff, float gradLoss, Tensor gradLogits) {
        KernelArgs.zLossBackward(device(), logits, gradLogits);
        check(lib.pmoe_z_loss_backward(logits.dim(0), logits.dim(1), logits.data(), coeff, gradLoss,
                gradLogits.data(), queue()), "pmoe_z_loss_backward");
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
                    expertCounts.data(), expertOffsets.data(), slotPosition.data(), sortedSlot.data(), queue()),
                    "pmoe_dispatch_plan");
        }
    }

    @Override
    public void permute(Tensor x, Tensor sortedSlot, int topK, Tensor out) {
        KernelArgs.permute(device(), x, sortedSlot, topK, out);
        check(lib.pmoe_permute(x.dtype().abiCode(), x.dim(0), topK, out.dim(0), x.dim(1), x.data(), sortedSlot.data(),
                out.data(), queue()), "pmoe_permute");
    }

    @Override
    public void permuteBackward(Tensor gradOut, Tensor slotPosition, Tensor gradX) {
        KernelArgs.rowsAndTokens(device(), "gradOut", gradOut, "gradX", gradX, slotPosition);
        check(lib.pmoe_permute_backward(gradX.dtype().abiCode(), gradX.dim(0), slotPosition.dim(1), gradOut.dim(0),
                gradX.dim(1), gradOut.data(), slotPosition.data(), gradX.data(), queue()), "pmoe_permute_backward");
    }

    @Override
    public void combine(Tensor expertOut, Tensor topkWeights, Tensor slotPosition, Tensor y) {
        KernelArgs.combine(device(), expertOut, topkWeights, slotPosition, y);
        check(lib.pmoe_combine(y.dtype().abiCode(), y.dim(0), slotPosition.dim(1), expertOut.dim(0), y.dim(1),
                expertOut.data(), topkWeights.data(), slotPosition.data(), y.data(), queue()), "pmoe_combine");
    }

    @Override
    public void combineBackward(Tensor gradY, Tensor expertOut, Tensor topkWeights, Tensor slotPosition,
            Tensor gradExpertOut, Tensor gradWeights) {
        KernelArgs.combineBackward(device(), gradY, expertOut, topkWeights, slotPosition, gradExpertOut, gradWeights);
        check(lib.pmoe_combine_backward(gradY.dtype().abiCode(), gradY.dim(0), slotPosition.dim(1), expertOut.dim(0),
                gradY.dim(1), gradY.data(), expertOut.data(), topkWeights.data(), slotPosition.data(),
                gradExpertOut.data(), gradWeights.data(), queue()), "pmoe_combine_backward");
    }

    @Override
    public void activationForward(Activation act, Tensor in, Tensor out) {
        KernelArgs.activation(device(), act, in, "out", out);
        check(lib.pmoe_activation_forward(in.dtype().abiCode(), act.abiCode(), out.dim(0), out.dim(1), in.data(),
                out.data(), queue()), "pmoe_activation_forward");
    }

    @Override
    public void activationBackward(Activation act, Tensor in, Tensor gradOut, Tensor gradIn) {
        KernelArgs.activation(device(), act, in, "gradOut", gradOut);
        Checks.tensor("gradIn", gradIn, device(), in.dtype(), in.shape());
        check(lib.pmoe_activation_backward(in.dtype().abiCode(), act.abiCode(), gradOut.dim(0), gradOut.dim(1),
                in.data(), gradOut.data(), gradIn.data(), queue()), "pmoe_activation_backward");
    }

    @Override
    public void convert(Tensor src, Tensor dst) {
        long n = KernelArgs.convert(device(), src, dst);
        check(lib.pmoe_convert(n, src.dtype().abiCode(), src.data(), dst.dtype().abiCode(), dst.data(), queue()),
                "pmoe_convert");
    }

    @Override
    public long findNonFinite(Tensor x) {
        Checks.floatTensor("x", x, device(), Checks.anyShape(x));
        try (Arena call = Arena.ofConfined()) {
            return result(call, ValueLayout.JAVA_LONG, "pmoe_find_nonfinite",
                    index -> lib.pmoe_find_nonfinite(x.dtype().abiCode(), x.numel(), x.data(), index, queue()))
                    .get(ValueLayout.JAVA_LONG, 0);
        }
    }

    @Override
    public void embeddingForward(Tensor ids, Tensor wte, Tensor wpe, Tensor out) {
        DenseArgs.embedding(device(), ids, "wte", wte, "wpe", wpe, "out", out, false);
        check(lib.pmoe_embedding_forward(out.dtype().abiCode(), ids.dim(0), ids.dim(1), wte.dim(1), wte.dim(0),
                wpe.dim(0), ids.data(), wte.data(), wpe.data(), out.data(), queue()), "pmoe_embedding_forward");
    }

    @Override
    public void embeddingBackward(Tensor ids, Tensor gradOut, Tensor gradWte, Tensor gradWpe) {
        DenseArgs.embedding(device(), ids, "gradWte", gradWte, "gradWpe", gradWpe, "gradOut", gradOut, true);
        check(lib.pmoe_embedding_backward(gradOut.dtype().abiCode(), ids.dim(0), ids.dim(1), gradWte.dim(1),
                gradWte.dim(0), gradWpe.dim(0), ids.data(), gradOut.data(), gradWte.data(), gradWpe.data(),
                queue()), "pmoe_embedding_backward");
    }

    @Override
    public void layerNormForward(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out, Tensor mean,
            Tensor rstd) {
        DenseArgs.Matrix m = DenseArgs.norm(device(), x, weight, Checks.notNull("bias", bias),
                Checks.notNull("mean", mean), rstd, "out", out);
        DenseArgs.eps(eps);
        check(lib.pmoe_layernorm_forward(x.dtype().abiCode(), m.rows(), m.cols(), eps, x.data(), weight.data(), bias.data(), out.data(),
                mean.data(), rstd.data(), queue()), "pmoe_layernorm_forward");
    }

    @Override
    public void layerNormBackward(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor gradOut, Tensor gradX,
            Tensor gradWeight, Tensor gradBias) {
        DenseArgs.Matrix m = DenseArgs.norm(device(), x, weight, null, Checks.notNull("mean", mean), rstd, "gradOut",
                gradOut);
        DenseArgs.like("gradX", gradX, device(), m, x);
        Checks.tensor("gradWeight", gradWeight, device(), DType.F32, m.cols());
        Checks.tensor("gradBias", gradBias, device(), DType.F32, m.cols());
        check(lib.pmoe_layernorm_backward(x.dtype().abiCode(), m.rows(), m.cols(), x.data(), weight.data(), mean.data(), rstd.data(),
                gradOut.data(), gradX.data(), gradWeight.data(), gradBias.data(), queue()), "pmoe_layernorm_backward");
    }

    @Override
    public void rmsNormForward(Tensor x, Tensor weight, float eps, Tensor out, Tensor rstd) {
        DenseArgs.Matrix m = DenseArgs.norm(device(), x, weight, null, null, rstd, "out", out);
        DenseArgs.eps(eps);
        check(lib.pmoe_rmsnorm_forward(x.dtype().abiCode(), m.rows(), m.cols(), eps, x.data(), weight.data(), out.data(), rstd.data(),
                queue()), "pmoe_rmsnorm_forward");
    }

    @Override
    public void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gradOut, Tensor gradX,
            Tensor gradWeight) {
        DenseArgs.Matrix m = DenseArgs.norm(device(), x, weight, null, null, rstd, "gradOut", gradOut);
        DenseArgs.like("gradX", gradX, device(), m, x);
        Checks.tensor("gradWeight", gradWeight, device(), DType.F32, m.cols());
        check(lib.pmoe_rmsnorm_backward(x.dtype().abiCode(), m.rows(), m.cols(), x.data(), weight.data(), rstd.data(), gradOut.data(),
                gradX.data(), gradWeight.data(), queue()), "pmoe_rmsnorm_backward");
    }

    @Override
    public void biasAdd(Tensor bias, Tensor x) {
        DenseArgs.Matrix m = DenseArgs.bias(device(), "bias", bias, Checks.notNull("x", x).dtype(), "x", x);
        check(lib.pmoe_bias_add(x.dtype().abiCode(), m.rows(), m.cols(), bias.data(), x.data(), queue()),
                "pmoe_bias_add");
    }

    @Override
    public void biasBackward(Tensor gradOut, Tensor gradBias) {
        DenseArgs.Matrix m = DenseArgs.bias(device(), "gradBias", gradBias, DType.F32, "gradOut", gradOut);
        check(lib.pmoe_bias_backward(gradOut.dtype().abiCode(), m.rows(), m.cols(), gradOut.data(), gradBias.data(),
                queue()), "pmoe_bias_backward");
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        DenseArgs.sameSize(device(), "a", a, "b", b);
        long n = DenseArgs.sameSize(device(), "a", a, "out", out);
        check(lib.pmoe_add(a.dtype().abiCode(), n, a.data(), b.data(), out.data(), queue()), "pmoe_add");
    }

    @Override
    public void accumulate(Tensor x, Tensor y) {
        long n = DenseArgs.sameSize(device(), "x", x, "y", y);
        check(lib.pmoe_accumulate(x.dtype().abiCode(), n, x.data(), y.data(), queue()), "pmoe_accumulate");
    }

    @Override
    public void scale(Tensor x, float alpha) {
        long n = Checks.floatTensor("x", x, device(), Checks.anyShape(x)).numel();
        check(lib.pmoe_scale(x.dtype().abiCode(), n, alpha, x.data(), queue()), "pmoe_scale");
    }

    @Override
    public void attentionForward(int heads, Tensor qkv, Tensor att, Tensor out) {
        DenseArgs.AttentionSizes s = DenseArgs.attention(device(), heads, att, "out", out, "qkv", qkv);
        check(lib.pmoe_attention_forward(out.dtype().abiCode(), s.batch(), s.seq(), s.channels(), heads, qkv.data(), att.data(), out.data(),
                queue()), "pmoe_attention_forward");
    }

    @Override
    public void attentionBackward(int heads, Tensor qkv, Tensor att, Tensor gradOut, Tensor gradQkv) {
        DenseArgs.AttentionSizes s = DenseArgs.attention(device(), heads, att, "gradOut", gradOut, "qkv", qkv);
        DenseArgs.tokens("gradQkv", gradQkv, device(), s.batch(), s.seq(), 3 * s.channels());
        Checks.sameDtype("gradQkv", gradQkv, qkv);
        check(lib.pmoe_attention_backward(qkv.dtype().abiCode(), s.batch(), s.seq(), s.channels(), heads, qkv.data(), att.data(),
                gradOut.data(), gradQkv.data(), queue()), "pmoe_attention_backward");
    }

    @Override
    public float crossEntropyForward(Tensor logits, Tensor targets, Tensor losses) {
        DenseArgs.crossEntropy(device(), logits, targets, "losses", losses, true);
        try (Arena call = Arena.ofConfined()) {
            return result(call, ValueLayout.JAVA_FLOAT, "pmoe_cross_entropy_forward",
                    mean -> lib.pmoe_cross_entropy_forward(logits.dtype().abiCode(), logits.dim(0), logits.dim(1), logits.data(),
                            targets.data(), losses.data(), mean, NULL, queue()))
                    .get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    @Override
    public void crossEntropyBackward(Tensor logits, Tensor targets, float gradScale, Tensor gradLogits) {
        DenseArgs.crossEntropy(device(), logits, targets, "gradLogits", gradLogits, false);
        Checks.require(Float.isFinite(gradScale), "gradScale: must be finite, got " + gradScale);
        check(lib.pmoe_cross_entropy_backward(logits.dtype().abiCode(), logits.dim(0), logits.dim(1), logits.data(), targets.data(), gradScale,
                gradLogits.data(), queue()), "pmoe_cross_entropy_backward");
    }

    @Override
    public void adamwStep(Tensor params, Tensor grads, float gradScale, Tensor m, Tensor v, float lr, float beta1,
            float beta2, float eps, float weightDecay, int step) {
        adamw(params, grads, gradScale, m, v, null, lr, beta1, beta2, eps, weightDecay, step);
    }

    @Override
    public void adamwStep(Tensor params, Tensor grads, float gradScale, Tensor m, Tensor v, Tensor working, float lr,
            float beta1, float beta2, float eps, float weightDecay, int step) {
        Checks.notNull("working", working);
        adamw(params, grads, gradScale, m, v, working, lr, beta1, beta2, eps, weightDecay, step);
    }

    private void adamw(Tensor params, Tensor grads, float gradScale, Tensor m, Tensor v, Tensor working, float lr,
            float beta1, float beta2, float eps, float weightDecay, int step) {
        DenseArgs.adamw(device(), params, grads, gradScale, m, v, working, lr, beta1, beta2, eps, weightDecay, step);
        int workingDtype = working == null ? DType.F32.abiCode() : working.dtype().abiCode();
        MemorySegment workingData = working == null ? NULL : working.data();
        check(lib.pmoe_adamw_step(params.numel(), params.data(), grads.data(), gradScale, m.data(), v.data(), lr,
                beta1, beta2, eps, weightDecay, step, workingDtype, workingData, queue()), "pmoe_adamw_step");
    }

    @Override
    public double sumSquares(Tensor x) {
        long[] n = {DenseArgs.floats("x", x, device())};
        return sumSquares(List.of(x), n);
    }

    @Override
    public double sumSquares(List<Tensor> xs) {
        Checks.notNull("xs", xs);
        long[] n = new long[xs.size()];
        for (int i = 0; i < n.length; i++) {
            n[i] = DenseArgs.floats("xs[" + i + "]", xs.get(i), device());
        }
        return sumSquares(xs, n);
    }

    /** One kernel per tensor (of n[i] elements), each into its own slot of one buffer, so the host reads once. */
    private double sumSquares(List<Tensor> xs, long[] n) {
        if (n.length == 0) {
            return 0;
        }
        try (Arena call = Arena.ofConfined()) {
            MemorySegment sums = results(call, ValueLayout.JAVA_DOUBLE, n.length, "pmoe_sum_squares",
                    (i, sum) -> lib.pmoe_sum_squares(n[i], xs.get(i).data(), sum, queue()));
            double total = 0;
            for (int i = 0; i < n.length; i++) {
                total += sums.getAtIndex(ValueLayout.JAVA_DOUBLE, i);
            }
            return total;
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

    /** A kernel call that writes result i (a scalar) through the pointer it is given. */
    private interface ResultCall {
        int run(int i, MemorySegment result);
    }

    /** {@link #results} of one kernel. */
    private MemorySegment result(Arena call, MemoryLayout layout, String function, ToIntFunction<MemorySegment> kernel) {
        return results(call, layout, 1, function, (i, out) -> kernel.applyAsInt(out));
    }

    /**
     * Runs count kernels whose result pointers are backend memory (device memory on a GPU, as
     * every pointer argument there), slot i for kernel i, and returns the results copied into
     * call: one copy, so one host synchronisation on a device whatever the count.
     */
    private MemorySegment results(Arena call, MemoryLayout layout, int count, String function, ResultCall kernel) {
        long bytes = layout.byteSize() * count;
        try (TensorMemory scratch = openMemory(false)) {
            MemorySegment out = scratch.allocateUninitialized(bytes);
            for (int i = 0; i < count; i++) {
                check(kernel.run(i, scratch.slice(out, i * layout.byteSize(), layout.byteSize())), function);
            }
            MemorySegment host = call.allocate(bytes, layout.byteAlignment());
            scratch.copyToHost(out, host, bytes);
            return host;
        }
    }

    /** Every value of an i32 index tensor must lie in [0, bound). */
    private void checkIds(String arg, Tensor ids, int bound) {
        if (!valueChecks) {
            return;
        }
        int[] values = ids.toIntArray();
        for (int i = 0; i < values.length; i++) {
            int id = values[i];
            if (id < 0 || id >= bound) {
                throw new IllegalArgumentException(arg + ": value " + id + " at flat index " + i + " is outside [0, " + bound + ")");
            }
        }
    }

    /**
     * The kernel cannot know how many rows `a` has: the groups must end within them. Without
     * value checks (a device outside the debug mode) the offsets are trusted: a dispatch plan's
     * end at most at tokens * topK, the rows its buffers have.
     */
    private void checkLastOffset(Tensor offsets, Tensor a) {
        if (!valueChecks) {
            return;
        }
        int last = offsets.getInt(offsets.numel() - 1);
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
