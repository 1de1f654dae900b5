package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;

/**
 * The gate: logits = x · W_gate [hidden, experts] (pmoe_gemm), then scores and the top-k experts
 * of each token with their weights (pmoe_router_forward, fused). Backward is split in two so the
 * z-loss can add its gradient to the logits' gradient in between:
 * {@link #backwardScores} then {@link #backwardGate}.
 */
public final class Router {
    private final Backend backend;
    private final Parameter weight;
    private final int topK;
    private final ScoreFunction score;
    private final boolean renormalize;

    public Router(Backend backend, Parameter weight, int topK, ScoreFunction score, boolean renormalize) {
        this.backend = Checks.notNull("backend", backend);
        this.weight = Checks.notNull("weight", weight);
        Checks.tensor("weight", weight.value(), backend.device(), DType.F32, ANY, ANY);
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

    /** x [T, hidden] -> logits [T, E], scores [T, E], topkWeights [T, K], topkIds [T, K]. */
    public void forward(Tensor x, Tensor logits, Tensor scores, Tensor topkWeights, Tensor topkIds) {
        Checks.tensor("x", x, backend.device(), DType.F32, ANY, hidden());
        Checks.tensor("topkIds", topkIds, backend.device(), DType.I32, x.dim(0), topK);
        backend.gemm(false, false, 1f, x, weight.value(), 0f, logits);
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

    /** weight.grad += x^T · gradLogits; gradX = gradLogits · W^T, added to gradX's contents if accumulate. */
    public void backwardGate(Tensor x, Tensor gradLogits, Tensor gradX, boolean accumulate) {
        Checks.tensor("x", x, backend.device(), DType.F32, ANY, hidden());
        backend.gemm(true, false, 1f, x, gradLogits, 1f, weight.grad());
        backend.gemm(false, true, 1f, gradLogits, weight.value(), accumulate ? 1f : 0f, gradX);
    }
}
