package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.MigrationCost;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;

/**
 * The cost model's prices for what a placement policy does to one MoE layer: the layer's time
 * per step, what keeping replicas identical costs per step, and what changing placement costs
 * once. Shared by the smart policy (to decide) and the simulator (to charge every policy alike).
 */
public final class PlacementCosts {
    private final PolicyContext context;
    private final CostModel cost;
    private final ParallelPlan plan;

    public PlacementCosts(PolicyContext context) {
        this.context = context;
        this.cost = context.cost();
        this.plan = context.plan();
    }

    public PolicyContext context() {
        return context;
    }

    /** Expert compute and all-to-alls of the layer over one step (all its micro-batches). */
    public double layerSeconds(ExpertPlacement placement, long[][] groupLoad) {
        return context.skeleton().microBatches() * cost.moeLayerSeconds(plan, placement, groupLoad);
    }

    /** Per step: keeping the replicas of placement identical (0 without replicas). */
    public double syncSeconds(ExpertPlacement placement, ReplicaSync sync) {
        return switch (sync) {
            case COPY_EACH_STEP -> copyEachStepSeconds(placement);
            case ALL_REDUCE -> allReduceSeconds(placement);
        };
    }

    /** Once: going from placement from to placement to. */
    public double changeSeconds(ExpertPlacement from, ExpertPlacement to, ReplicaSync sync) {
        if (sync == ReplicaSync.COPY_EACH_STEP || from.equals(to)) {
            return 0;
        }
        return cost.migrationCost(plan, from, to).seconds();
    }

    /** Weights from each owner (its native slot) into every replica slot, and the gradients back. */
    private double copyEachStepSeconds(ExpertPlacement placement) {
        ExpertPlacement natives = ExpertPlacement.identity(placement.experts(), placement.devices(),
                placement.slotsPerDevice() - placement.experts() / placement.devices());
        MigrationCost copy = cost.transferCost(plan, natives, placement, cost.expertParameterBytes(plan));
        if (copy.movedExperts() == 0) {
            return 0;
        }
        double[][] there = copy.bytesByLink();
        double[][] back = new double[there.length][there.length];
        for (int i = 0; i < there.length; i++) {
            for (int j = 0; j < there.length; j++) {
                back[j][i] = there[i][j];
            }
        }
        return copy.seconds() + cost.linkCost(plan, back, copy.movedExperts()).seconds();
    }

    /** A ring all-reduce of each replicated expert's gradient among its copies, all experts at once. */
    private double allReduceSeconds(ExpertPlacement placement) {
        int ep = placement.devices();
        double[][] bytes = new double[ep][ep];
        double expertBytes = cost.expertParameterBytes(plan);
        int replicated = 0;
        for (int e = 0; e < placement.experts(); e++) {
            int k = placement.copies(e);
            if (k < 2) {
                continue;
            }
            int[] slots = placement.slotsOf(e);
            replicated++;
            for (int i = 0; i < k; i++) {
                int from = placement.deviceOf(slots[i]);
                int to = placement.deviceOf(slots[(i + 1) % k]);
                bytes[from][to] += 2.0 * (k - 1) / k * expertBytes;
            }
        }
        return replicated == 0 ? 0 : cost.linkCost(plan, bytes, replicated).seconds();
    }
}
