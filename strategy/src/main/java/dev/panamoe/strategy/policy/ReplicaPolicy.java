package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * Megatron-Core's per-step replica planner (2026): every device holds its native experts (the
 * identity placement, never moved) plus replicaSlots replica slots. Every step, from that step's
 * gathered histogram, {@link Balancer#replicate} copies hot experts into replica slots on the
 * least-loaded devices while that lowers the busiest device, splitting their tokens among the
 * copies. Replicas are refreshed every step ({@link ReplicaSync#COPY_EACH_STEP}: a weight copy in
 * and a gradient reduction back per replica per step; optimizer state never moves).
 *
 * <p>Megatron-Core splits an expert's tokens unevenly to fill each receiver exactly; here, as in
 * {@link ExpertPlacement#deviceLoads}, copies share evenly, which the cost model prices.
 */
public final class ReplicaPolicy implements PlacementPolicy {
    private final int replicaSlots;
    private final int[] home;
    private final List<ExpertPlacement> initial;
    private final List<ExpertPlacement> current;

    public ReplicaPolicy(PolicyContext context, int replicaSlots) {
        if (replicaSlots < 1) {
            throw new IllegalArgumentException("replicaSlots: must be >= 1, got " + replicaSlots);
        }
        this.replicaSlots = replicaSlots;
        ExpertPlacement natives = ExpertPlacement.identity(context.experts(), context.devices(), replicaSlots);
        this.home = new int[context.experts()];
        for (int e = 0; e < home.length; e++) {
            home[e] = e / context.nativeSlots();
        }
        this.initial = Collections.nCopies(context.moeLayers(), natives);
        this.current = new ArrayList<>(initial);
    }

    @Override
    public String name() {
        return "replica:" + replicaSlots;
    }

    @Override
    public List<ExpertPlacement> initial() {
        return initial;
    }

    @Override
    public boolean decidesWithinStep() {
        return true;
    }

    @Override
    public Optional<List<ExpertPlacement>> decide(long iteration, LoadTracker tracker) {
        boolean changed = false;
        for (int layer = 0; layer < current.size(); layer++) {
            if (tracker.size(layer) == 0) {
                continue;
            }
            ExpertPlacement p = current.get(layer);
            double[] load = Balancer.toDouble(tracker.recent(layer, 0));
            int[][] holders = Balancer.replicate(load, home, p.devices(), p.slotsPerDevice(),
                    p.devices() * replicaSlots);
            ExpertPlacement next = Balancer.arrange(p, holders);
            if (!next.equals(p)) {
                current.set(layer, next);
                changed = true;
            }
        }
        return changed ? Optional.of(List.copyOf(current)) : Optional.empty();
    }

    @Override
    public ReplicaSync replicaSync() {
        return ReplicaSync.COPY_EACH_STEP;
    }
}
