package dev.panamoe.strategy.cost;

import dev.panamoe.strategy.plan.ParallelPlan;
import java.util.Locale;

/**
 * A plan skeleton: everything about how a step runs except where the experts are — the
 * parallel plan, the micro-batch (sequences per data-parallel rank per micro-batch), how many
 * micro-batches a step accumulates, and the MoE capacity factor ({@link #DROPLESS} for none).
 * A pool of skeletons leaves placement as the only thing to vary while training.
 */
public record Skeleton(ParallelPlan plan, int microBatch, int microBatches, double capacityFactor) {

    /** No capacity limit; the same value as the runtime's MoELayer.Config.DROPLESS. */
    public static final double DROPLESS = Double.POSITIVE_INFINITY;

    public Skeleton {
        if (plan == null) {
            throw new IllegalArgumentException("plan: must not be null");
        }
        if (microBatch < 1) {
            throw new IllegalArgumentException("microBatch: must be >= 1, got " + microBatch);
        }
        if (microBatches < 1) {
            throw new IllegalArgumentException("microBatches: must be >= 1, got " + microBatches);
        }
        if (!(capacityFactor > 0)) {
            throw new IllegalArgumentException("capacityFactor: must be > 0 (or DROPLESS), got " + capacityFactor);
        }
    }

    public boolean dropless() {
        return capacityFactor == DROPLESS;
    }

    /** Sequences per step over the whole cluster: microBatch * microBatches * dataParallel. */
    public int globalBatch() {
        return microBatch * microBatches * plan.dataParallel();
    }

    /** "dropless" or the factor ("1.25"). */
    public String capacityName() {
        return dropless() ? "dropless" : String.format(Locale.ROOT, "%.3g", capacityFactor);
    }

    /** Parses "dropless" (also "none", "inf") or a positive number. */
    public static double parseCapacity(String s) {
        String t = s.strip().toLowerCase(Locale.ROOT);
        if (t.equals("dropless") || t.equals("none") || t.equals("inf")) {
            return DROPLESS;
        }
        try {
            double v = Double.parseDouble(t);
            if (v > 0 && Double.isFinite(v)) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("capacity: \"" + s + "\" is neither \"dropless\" nor a number > 0");
    }

    @Override
    public String toString() {
        return plan + " mb=" + microBatch + "x" + microBatches + " cf=" + capacityName();
    }
}
