package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import java.util.Arrays;

/**
 * What a policy decides for: the model and cluster (through the cost model) and the plan
 * skeleton it trains under. Placements are per MoE layer over the plan's ep devices.
 */
public record PolicyContext(CostModel cost, Skeleton skeleton) {

    public PolicyContext {
        if (cost == null || skeleton == null) {
            throw new IllegalArgumentException((cost == null ? "cost" : "skeleton") + ": must not be null");
        }
        skeleton.plan().validate(cost.model());
    }

    public ModelShape model() {
        return cost.model();
    }

    public ParallelPlan plan() {
        return skeleton.plan();
    }

    public int moeLayers() {
        return model().moeLayers();
    }

    public int experts() {
        return model().experts();
    }

    /** Devices of an expert-parallel group: the plan's ep. */
    public int devices() {
        return plan().ep();
    }

    /** Experts per device without replicas: experts / ep. */
    public int nativeSlots() {
        return experts() / devices();
    }

    /** Token slots (tokens x top-k) one rank routes per micro-batch. */
    public long slotsPerRank() {
        return (long) skeleton.microBatch() * model().seq() * model().topK();
    }

    /**
     * long[ep][experts] loads of one micro-batch at the plan's scale from per-expert loads at any
     * scale, every source sending alike (the tracker keeps per-expert totals only). The ep rows
     * are one shared array: read-only, for the cost model.
     */
    public long[][] groupLoad(double[] perExpert) {
        double total = 0;
        for (double v : perExpert) {
            total += v;
        }
        long[] row = new long[perExpert.length];
        double scale = total > 0 ? slotsPerRank() / total : 0;
        for (int e = 0; e < perExpert.length; e++) {
            row[e] = Math.round(perExpert[e] * scale);
        }
        long[][] load = new long[devices()][];
        Arrays.fill(load, row);
        return load;
    }

    /** The pipeline stage holding MoE layer moeLayer (block (moeLayer + 1) * moeEvery - 1). */
    public int stageOf(int moeLayer) {
        int block = (moeLayer + 1) * model().moeEvery() - 1;
        return block / (model().layers() / plan().pp());
    }
}
