package dev.panamoe.runtime.report;

import java.util.Arrays;
import java.util.Objects;

/**
 * What the trainer measured at one optimizer step: one line of the metrics file, one point of the
 * report's charts.
 *
 * @param step            optimizer step, from 1
 * @param loss            mean training cross-entropy of the step's tokens, in nats
 * @param valLoss         held-out loss, or {@code NaN} when this step did not evaluate
 * @param tokensPerSecond training tokens processed per second of wall time in this step
 * @param auxLoss         the MoE load-balancing (plus z-) loss added to {@code loss}'s gradient
 * @param lr              learning rate applied at this step
 * @param gradNorm        global L2 norm of the gradient before clipping
 * @param expertCounts    {@code [moeLayer][expert]}: token-to-expert assignments routed in this step
 *                        (each token counts once per chosen expert, so a row sums to tokens x top-k);
 *                        copied on construction, not to be modified through the accessor
 * @param placementChanges MoE layers whose expert placement changed after this step (0 without a
 *                        placement policy: single device, static placement)
 * @param movedSlots      physical expert slots that received another expert in those changes
 * @param precision       what the step trained in, "fp32" or "bf16" (a resumed run may change it)
 */
public record StepMetrics(long step, double loss, double valLoss, double tokensPerSecond, double auxLoss,
                          double lr, double gradNorm, int[][] expertCounts, int placementChanges, int movedSlots,
                          String precision) {

    public StepMetrics {
        if (step < 0)
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        if (placementChanges < 0 || movedSlots < 0)
            throw new IllegalArgumentException("placementChanges and movedSlots must be >= 0, got "
                    + placementChanges + " and " + movedSlots);
        if (!"fp32".equals(precision) && !"bf16".equals(precision))
            throw new IllegalArgumentException("precision must be fp32 or bf16, got " + precision);
        Objects.requireNonNull(expertCounts, "expertCounts");
        int[][] copy = new int[expertCounts.length][];
        for (int layer = 0; layer < expertCounts.length; layer++) {
            if (expertCounts[layer] == null)
                throw new IllegalArgumentException("expertCounts[" + layer + "] is null");
            copy[layer] = expertCounts[layer].clone();
        }
        expertCounts = copy;
    }

    /** A step trained in fp32. */
    public StepMetrics(long step, double loss, double valLoss, double tokensPerSecond, double auxLoss, double lr,
                       double gradNorm, int[][] expertCounts, int placementChanges, int movedSlots) {
        this(step, loss, valLoss, tokensPerSecond, auxLoss, lr, gradNorm, expertCounts, placementChanges, movedSlots,
                "fp32");
    }

    /** A step trained in fp32 that changed no placement. */
    public StepMetrics(long step, double loss, double valLoss, double tokensPerSecond, double auxLoss, double lr,
                       double gradNorm, int[][] expertCounts) {
        this(step, loss, valLoss, tokensPerSecond, auxLoss, lr, gradNorm, expertCounts, 0, 0);
    }

    /** Whether this step ran an evaluation on held-out data. */
    public boolean evaluated() {
        return !Double.isNaN(valLoss);
    }

    /** Number of MoE layers counted. */
    public int moeLayers() {
        return expertCounts.length;
    }

    // Arrays compare by reference in a record's generated methods; metrics compare by content.
    @Override
    public boolean equals(Object other) {
        return other instanceof StepMetrics m
                && step == m.step
                && Double.compare(loss, m.loss) == 0
                && Double.compare(valLoss, m.valLoss) == 0
                && Double.compare(tokensPerSecond, m.tokensPerSecond) == 0
                && Double.compare(auxLoss, m.auxLoss) == 0
                && Double.compare(lr, m.lr) == 0
                && Double.compare(gradNorm, m.gradNorm) == 0
                && Arrays.deepEquals(expertCounts, m.expertCounts)
                && placementChanges == m.placementChanges
                && movedSlots == m.movedSlots
                && precision.equals(m.precision);
    }

    @Override
    public int hashCode() {
        return Objects.hash(step, loss, valLoss, tokensPerSecond, auxLoss, lr, gradNorm, Arrays.deepHashCode(expertCounts),
                placementChanges, movedSlots, precision);
    }

    @Override
    public String toString() {
        return "StepMetrics[step=" + step + ", loss=" + loss + ", valLoss=" + valLoss + ", tokensPerSecond="
                + tokensPerSecond + ", auxLoss=" + auxLoss + ", lr=" + lr + ", gradNorm=" + gradNorm
                + ", expertCounts=" + Arrays.deepToString(expertCounts) + ", placementChanges=" + placementChanges
                + ", movedSlots=" + movedSlots + "]";
    }
}
