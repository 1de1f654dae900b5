package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;

import java.util.function.BiConsumer;

/**
 * The gate: logits = x · W_gate [hidden, experts] (pmoe_gemm), then scores and the top-k experts
 * of each token with their weights (pmoe_router_forward, fused). Backward is split in two so the
 * z-loss can add its gradient to the logits' gradient in between:
 * {@link #backwardScores} then {@link #backwardGate}.
 *
 * <p>In mixed precision x is bf16 and the gate GEMMs read a bf16 working copy of the f32 master
 * weight (refreshed by {@link #refreshWorkingCopy}); the logits, scores, top-k and losses stay
 * f32 (a bf16 GEMM with f32 output), as Megatron-Core keeps its router, and the weight's
 * gradient is accumulated in f32.
 */
public final class Router {
    private final Backend backend;
    private final Parameter weight;
    private final int topK;
    private final ScoreFunction score;
    private final boolean renormalize;
    /** The weight the GEMMs read: the f32 master, or its bf16 working copy. */
    private final Tensor working;

    public Router(Backend backend, Parameter weight, int topK, ScoreFunction score, boolean renormalize) {
        this(backend, weight, null, topK, score, renormalize);
    }

    /**
     * With workingWeight a bf16 tensor of the weight's shape (filled from the master here and by
     * {@link #refreshWorkingCopy}), x and the gradients of x are bf16; null: all f32.
     */
    public Router(Backend backend, Parameter weight, Tensor workingWeight, int topK, ScoreFunction score,
            boolean renormalize) {
        this.backend = Checks.notNull("backend", backend);
        this.weight = Checks.notNull("weight", weight);
        Checks.tensor("weight", weight.value(), backend.device(), DType.F32, ANY, ANY);
        if (workingWeight != null) {
            Checks.tensor("workingWeight", workingWeight, backend.device(), DType.BF16, weight.value().shape());
        }
        this.working = workingWeight == null ? weight.value() : workingWeight;
        Checks.require(topK >= 1 && topK <= experts(), "topK: must be in [1, " + experts() + "] (experts), got " + topK);
        this.topK = topK;
        this.score = Checks.notNull("score", score);
        this.renormalize = renormalize;
    }

    public Parameter weight() {
        return weight;
    }

    public int hidden() {
        return weight.value().dim(0);
    }

    public int experts() {
        return weight.value().dim(1);
    }

    public int topK() {
        return topK;
    }

    public ScoreFunction score() {
        return score;
    }

    public boolean renormalize() {
        return renormalize;
    }

    /** Storage of x and its gradient: f32, or bf16 with a bf16 working copy of the weight. */
    public DType dtype() {
        return working.dtype();
    }

    /** Gives action the weight and its bf16 working copy; nothing in f32. */
    public void forEachWorkingCopy(BiConsumer<Parameter, Tensor> action) {
        if (working != weight.value()) {
            action.accept(weight, working);
        }
    }

    /**
     * Rounds the f32 master weight into the bf16 working copy: after writing the master other
     * than by an optimizer step that writes the copy itself ({@link #forEachWorkingCopy}); a
     * no-op in f32.
     */
    public void refreshWorkingCopy() {
        forEachWorkingCopy((master, copy) -> backend.convert(master.value(), copy));
    }

    /** x [T, hidden] -> logits [T, E], scores [T, E], topkWeights [T, K], topkIds [T, K]. */
    public void forward(Tensor x, Tensor logits, Tensor scores, Tensor topkWeights, Tensor topkIds) {
        Checks.tensor("x", x, backend.device(), dtype(), ANY, hidden());
        Checks.tensor("topkIds", topkIds, backend.device(), DType.I32, x.dim(0), topK);
        backend.gemm(false, false, 1f, x, working, 0f, logits);
        backend.routerForward(score, renormalize, logits, scores, topkWeights, topkIds);
    }

    /**
     * gradLogits [T, E] (overwritten) from the gradient of the top-k weights and, if not null,
     * a direct gradient on the scores (the aux loss's).
     */
    public void backwardScores(Tensor scores, Tensor topkIds, Tensor gradTopkWeights, Tensor gradScores,
            Tensor gradLogits) {
        backend.routerBackward(score, renormalize, scores, topkIds, gradTopkWeights, gradScores, gradLogits);
    }

    /** weight.grad += x^T · gradLogits; gradX = gradLogits · W^T, added to gradX's contents if accumulate (f32). */
    public void backwardGate(Tensor x, Tensor gradLogits, Tensor gradX, boolean accumulate) {
        backwardGate(x, gradLogits, null, gradX, accumulate);
    }

    /**
     * As above; in bf16, gradLogits (f32) is first rounded into gradLogitsWork [T, E] bf16, the
     * operand of the two bf16 GEMMs (f32 output into weight.grad, bf16 into gradX). Unused in f32.
     */
    public void backwardGate(Tensor x, Tensor gradLogits, Tensor gradLogitsWork, Tensor gradX, boolean accumulate) {
        Checks.tensor("x", x, backend.device(), dtype(), ANY, hidden());
        Tensor g = gradLogits;
        if (dtype() == DType.BF16) {
            Checks.tensor("gradLogitsWork", gradLogitsWork, backend.device(), DType.BF16, gradLogits.shape());
            backend.convert(gradLogits, gradLogitsWork);
            g = gradLogitsWork;
        }
        backend.gemm(true, false, 1f, x, g, 1f, weight.grad());
        backend.gemm(false, true, 1f, g, working, accumulate ? 1f : 0f, gradX);
    }
}
