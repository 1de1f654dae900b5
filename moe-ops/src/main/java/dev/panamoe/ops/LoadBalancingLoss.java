package dev.panamoe.ops;

/**
 * The router's auxiliary losses: the Switch/GShard load-balancing loss
 * auxCoeff * E * sum_e f_e * P_e (f_e: share of routed slots, a constant; P_e: mean score) and
 * the ST-MoE z-loss zCoeff * mean_t logsumexp(logits_t)^2. Their gradients flow into the
 * router: the aux loss's through the scores, the z-loss's straight into the logits.
 */
public final class LoadBalancingLoss {
    private final Backend backend;
    private final int topK;
    private final float auxCoeff;
    private final float zCoeff;

    public LoadBalancingLoss(Backend backend, int topK, float auxCoeff, float zCoeff) {
        this.backend = Checks.notNull("backend", backend);
        this.topK = Checks.atLeast("topK", topK, 1);
        Checks.require(auxCoeff >= 0 && Float.isFinite(auxCoeff), "auxCoeff: must be finite and >= 0, got " + auxCoeff);
        Checks.require(zCoeff >= 0 && Float.isFinite(zCoeff), "zCoeff: must be finite and >= 0, got " + zCoeff);
        this.auxCoeff = auxCoeff;
        this.zCoeff = zCoeff;
    }

    public float auxCoeff() {
        return auxCoeff;
    }

    public float zCoeff() {
        return zCoeff;
    }

    /** auxLoss [1], zLoss [1] and expertCounts [E] (routed slots per logical expert). */
    public void forward(Tensor logits, Tensor scores, Tensor topkIds, Tensor auxLoss, Tensor zLoss, Tensor expertCounts) {
        backend.auxLossForward(scores, topkIds, auxCoeff, auxLoss, expertCounts);
        backend.zLossForward(logits, zCoeff, zLoss);
    }

    /** gradScores [T, E] = gradLoss * d aux / d scores (overwritten; zeros when auxCoeff is 0). */
    public void backwardAux(Tensor expertCounts, float gradLoss, Tensor gradScores) {
        backend.auxLossBackward(topK, expertCounts, auxCoeff, gradLoss, gradScores);
    }

    /** gradLogits [T, E] += gradLoss * d z / d logits. */
    public void backwardZ(Tensor logits, float gradLoss, Tensor gradLogits) {
        backend.zLossBackward(logits, zCoeff, gradLoss, gradLogits);
    }
}
