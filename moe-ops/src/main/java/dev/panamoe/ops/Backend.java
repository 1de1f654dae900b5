package dev.panamoe.ops;

import java.util.List;

/**
 * One implementation of the panamoe.h ABI plus its memory management, as typed calls on
 * tensors: one method per kernel, sizes taken from the tensors' shapes. Implementations
 * validate every argument in Java (shapes, dtypes, devices, open tensors, and on the CPU the
 * ids and offsets they can read) before the native call, and turn a native error status into
 * NativeCallException.
 *
 * <p>Shapes below: T tokens, E (logical) experts, P physical experts, K top-k, H hidden,
 * R rows of the expert-sorted buffer, G groups; "f32/bf16" means either float dtype.
 */
public interface Backend {

    /** Capacity value for {@link #dispatchPlan}: no capacity limit (PMOE_CAPACITY_DROPLESS). */
    int CAPACITY_DROPLESS = -1;

    /**
     * The backend of a device: {@link CpuBackend#get()} for the CPU, {@link CudaBackend#get(int)}
     * for a GPU (which throws {@link BackendUnavailableException} with cudart's reason when the
     * device cannot be used).
     */
    static Backend forDevice(Device device) {
        Checks.notNull("device", device);
        return device.isCpu() ? CpuBackend.get() : CudaBackend.get(device.index());
    }

    String name();

    Device device();

    /** Opens the memory a {@link TensorScope} allocates from (shared: usable from any thread); closing it frees it. */
    TensorMemory openMemory(boolean shared);

    /**
     * Whether the calls check the values of index tensors on the host before the kernels
     * (expert ids and remap entries in range, grouped GEMM offsets within the rows) and the MoE
     * layer its inputs for NaN/Inf. Always on the CPU, where reading them is free; on a device
     * only in the debug mode ({@code PMOE_CUDA_CHECK_INPUTS=1}, which also turns on the CUDA
     * library's own checks of array contents and a synchronisation after each kernel, or
     * {@code -Dpanamoe.cuda.checkInputs=true} for the Java checks alone), since each check is a
     * host synchronisation. Outside it the CUDA
     * kernels skip out-of-range ids without touching memory they do not own, and trust the
     * offsets (a dispatch plan's end within the rows its buffers have).
     */
    default boolean checksValuesOnHost() {
        return true;
    }

    /** Threads used by parallel kernels (a process-wide setting of the library). */
    void setNumThreads(int n);

    int numThreads();

    /**
     * c[m, n] = alpha * op(a) * op(b) + beta * c; a is [m, k] ([k, m] if transA), b is [k, n] ([n, k] if transB);
     * a and b f32 (c f32) or bf16 (c f32 or bf16: products accumulated in f32, a bf16 c rounded once).
     */
    void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c);

    /**
     * c[rows_g, n] = a[rows_g, k] * weights[g] for each group g of offsets [G + 1]; weights[g] is [k, n]; a,
     * weights and c all f32 or all bf16.
     */
    void groupedGemmNn(Tensor offsets, Tensor a, TensorTable weights, Tensor c);

    /** c[rows_g, n] = a[rows_g, k] * weights[g]^T; weights[g] is [n, k]. */
    void groupedGemmNt(Tensor offsets, Tensor a, TensorTable weights, Tensor c);

    /**
     * out[g][k, n] = beta * out[g] + a[rows_g, k]^T * b[rows_g, n]; a and b f32 (out f32) or bf16 (out bf16, or f32
     * to accumulate into f32 master gradients).
     */
    void groupedGemmTn(Tensor offsets, Tensor a, Tensor b, float beta, TensorTable out);

    /** logits [T, E] -> scores [T, E], topkWeights [T, K] f32, topkIds [T, K] i32. */
    void routerForward(ScoreFunction score, boolean renormalize, Tensor logits, Tensor scores, Tensor topkWeights,
            Tensor topkIds);

    /** gradLogits [T, E] from gradTopkWeights [T, K] and, if not null, a direct gradient on the scores [T, E]. */
    void routerBackward(ScoreFunction score, boolean renormalize, Tensor scores, Tensor topkIds, Tensor gradTopkWeights,
            Tensor gradScores, Tensor gradLogits);

    /** Aux loss of scores [T, E] and topkIds [T, K] into loss [1]; expertCounts [E] i32 receives the routed slots per expert. */
    void auxLossForward(Tensor scores, Tensor topkIds, float coeff, Tensor loss, Tensor expertCounts);

    /** gradScores [T, E] = gradLoss * d aux / d scores (overwritten). */
    void auxLossBackward(int topK, Tensor expertCounts, float coeff, float gradLoss, Tensor gradScores);

    /** z-loss of logits [T, E] into loss [1]. */
    void zLossForward(Tensor logits, float coeff, Tensor loss);

    /** Adds gradLoss * d z / d logits into gradLogits [T, E]. */
    void zLossBackward(Tensor logits, float coeff, float gradLoss, Tensor gradLogits);

    /**
     * Dispatch plan of topkIds [T, K] (weights [T, K] for the drop-by-probability policy) through
     * remap [E] -> [0, P) (null: identity, E == P), with capacity rows per physical expert or
     * {@link #CAPACITY_DROPLESS}: expertCounts [P], expertOffsets [P + 1], slotPosition [T, K],
     * sortedSlot [T * K], all i32.
     */
    void dispatchPlan(Tensor topkIds, Tensor topkWeights, Tensor remap, int logicalExperts, int capacity,
            DropPolicy dropPolicy, Tensor expertCounts, Tensor expertOffsets, Tensor slotPosition, Tensor sortedSlot);

    /** out[r, :] = x[sortedSlot[r] / topK, :] for the R rows of out; x [T, H] f32/bf16, sortedSlot [T * K]. */
    void permute(Tensor x, Tensor sortedSlot, int topK, Tensor out);

    /** gradX [T, H] = sum over kept slots of gradOut [R, H] rows; slotPosition [T, K]. */
    void permuteBackward(Tensor gradOut, Tensor slotPosition, Tensor gradX);

    /** y [T, H] = sum_j topkWeights[t, j] * expertOut[slotPosition[t, j], :]; expertOut [R, H]. */
    void combine(Tensor expertOut, Tensor topkWeights, Tensor slotPosition, Tensor y);

    /** gradExpertOut [R, H] and gradWeights [T, K] from gradY [T, H]. */
    void combineBackward(Tensor gradY, Tensor expertOut, Tensor topkWeights, Tensor slotPosition, Tensor gradExpertOut,
            Tensor gradWeights);

    /** out [R, C] = act(in), in is [R, C] ([R, 2C] for SwiGLU); f32 or bf16 (all of one dtype; math in f32). */
    void activationForward(Activation act, Tensor in, Tensor out);

    /** gradIn (shape of in) from in and gradOut [R, C], all of in's dtype. */
    void activationBackward(Activation act, Tensor in, Tensor gradOut, Tensor gradIn);

    /**
     * dst = src converted elementwise between f32 and bf16 (round to nearest even), any shapes
     * with equal element counts; the same dtype copies. dst must not overlap src.
     */
    void convert(Tensor src, Tensor dst);

    /** Index of the first NaN/Inf of an f32 or bf16 tensor in row-major order, or -1. */
    long findNonFinite(Tensor x);

    // ---- dense transformer operators. [B, T, C] activations may be rank 3 or [B * T, C]; a
    // row-wise operator sees any tensor of rank >= 2 as [rows, last dimension]. Activations,
    // their gradients and the weights a forward reads are f32 or bf16 (one dtype per call, math
    // in f32); row statistics (mean, rstd), attention probabilities, losses and weight
    // gradients are f32. ----

    /** out [B, T, C] = wte[ids[b, t]] + wpe[t]; ids [B, T] i32 in [0, V), wte [V, C], wpe [maxT >= T, C]. */
    void embeddingForward(Tensor ids, Tensor wte, Tensor wpe, Tensor out);

    /** gradWte [V, C] and gradWpe [maxT, C] += the gradient of gradOut [B, T, C] (accumulated). */
    void embeddingBackward(Tensor ids, Tensor gradOut, Tensor gradWte, Tensor gradWpe);

    /** LayerNorm of each row of x [rows, C]: out like x; mean, rstd [rows] are kept for the backward. */
    void layerNormForward(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out, Tensor mean, Tensor rstd);

    /** gradX like x (overwritten); gradWeight, gradBias [C] (accumulated). */
    void layerNormBackward(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor gradOut, Tensor gradX,
            Tensor gradWeight, Tensor gradBias);

    /** RMSNorm of each row of x [rows, C]: out like x; rstd [rows] is kept for the backward. */
    void rmsNormForward(Tensor x, Tensor weight, float eps, Tensor out, Tensor rstd);

    /** gradX like x (overwritten); gradWeight [C] (accumulated). */
    void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor gradOut, Tensor gradX, Tensor gradWeight);

    /** x[r, :] += bias for each row of x [rows, C], in place. */
    void biasAdd(Tensor bias, Tensor x);

    /** gradBias [C] += the column sums of gradOut [rows, C] (accumulated). */
    void biasBackward(Tensor gradOut, Tensor gradBias);

    /** out = a + b elementwise over equal element counts; out may be a or b. */
    void add(Tensor a, Tensor b, Tensor out);

    /** y += x elementwise. */
    void accumulate(Tensor x, Tensor y);

    /** x *= alpha in place. */
    void scale(Tensor x, float alpha);

    /** Causal self-attention: qkv [B, T, 3C] -> att [B, heads, T, T] (probabilities, kept), out [B, T, C]. */
    void attentionForward(int heads, Tensor qkv, Tensor att, Tensor out);

    /** gradQkv [B, T, 3C] (overwritten) from gradOut [B, T, C] and the forward's qkv and att. */
    void attentionBackward(int heads, Tensor qkv, Tensor att, Tensor gradOut, Tensor gradQkv);

    /**
     * Softmax cross-entropy of logits [R, V] against targets [R] i32 (each in [0, V), or -1 to
     * ignore the row): losses [R] per row (0 when ignored); returns their mean over kept rows.
     */
    float crossEntropyForward(Tensor logits, Tensor targets, Tensor losses);

    /** gradLogits [R, V] = (softmax - onehot) * gradScale, 0 on ignored rows (overwritten; may be logits). */
    void crossEntropyBackward(Tensor logits, Tensor targets, float gradScale, Tensor gradLogits);

    /**
     * One AdamW update (bias-corrected, decoupled weight decay) of params, m, v in place; step >= 1.
     * It reads the gradients scaled by gradScale >= 0 (gradient clipping's factor, 1 for none):
     * the values {@link #scale} would leave in grads, which stay as they are.
     */
    void adamwStep(Tensor params, Tensor grads, float gradScale, Tensor m, Tensor v, float lr, float beta1,
            float beta2, float eps, float weightDecay, int step);

    /**
     * The AdamW update above on f32 master weights, writing the updated params into working as
     * well, converted to its dtype (f32 or bf16, rounded to nearest even) in the same pass: the
     * working copy that mixed precision's forward and backward read. working has params'
     * element count (any shape) and does not overlap params, grads, m or v.
     */
    void adamwStep(Tensor params, Tensor grads, float gradScale, Tensor m, Tensor v, Tensor working, float lr,
            float beta1, float beta2, float eps, float weightDecay, int step);

    /** Sum of squares of the elements of an f32 tensor, in double (for the global gradient norm). */
    double sumSquares(Tensor x);

    /**
     * The sum over xs, in order, of {@link #sumSquares(Tensor)} of each: bitwise the loop over
     * them, but a device backend reads the partial sums back in one copy (one host
     * synchronisation instead of one per tensor).
     */
    default double sumSquares(List<Tensor> xs) {
        double total = 0;
        for (Tensor x : xs) {
            total += sumSquares(x);
        }
        return total;
    }
}
