package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * SmartMoE's own policy ("dyn.X"): every period iterations, per layer, the experts' loads over
 * the last period iterations go through {@link Balancer#lpt} (heaviest first onto the
 * least-loaded device with a free slot, ties kept on the current device), and the result is
 * accepted only if the busiest device's load strictly drops. No replicas; its whole cost model
 * is the busiest device's load, so it never weighs what the move costs.
 */
public final class GreedyPolicy implements PlacementPolicy {
    public static final int DEFAULT_PERIOD = 10;

    private final int period;
    private final List<ExpertPlacement> initial;
    private final List<ExpertPlacement> current;

    public GreedyPolicy(PolicyContext context, int period) {
        if (period < 1) {
            throw new IllegalArgumentException("period: must be >= 1, got " + period);
        }
        this.period = period;
        this.initial = Collections.nCopies(context.moeLayers(),
                ExpertPlacement.identity(context.experts(), context.devices(), 0));
        this.current = new ArrayList<>(initial);
    }

    @Override
    public String name() {
        return "greedy:" + period;
    }

    @Override
    public List<ExpertPlacement> initial() {
        return initial;
    }

    @Override
    public Optional<List<ExpertPlacement>> decide(long iteration, LoadTracker tracker) {
        if (iteration == 0 || iteration % period != 0) {
            return Optional.empty();
        }
        boolean changed = false;
        for (int layer = 0; layer < current.size(); layer++) {
            if (tracker.size(layer) == 0) {
                continue;
            }
            ExpertPlacement next = rebalance(current.get(layer), tracker.mean(layer, period));
            if (next != null) {
                current.set(layer, next);
                changed = true;
            }
        }
        return changed ? Optional.of(List.copyOf(current)) : Optional.empty();
    }

    /** The LPT placement for load, or null when it does not strictly lower the busiest device. */
    static ExpertPlacement rebalance(ExpertPlacement placement, double[] load) {
        int[][] holders = Balancer.holders(placement);
        int[] device = new int[holders.length];
        for (int e = 0; e < device.length; e++) {
            device[e] = holders[e][0];
        }
        int[] next = Balancer.lpt(load, placement.devices(), placement.slotsPerDevice(), device);
        int[][] nextHolders = new int[next.length][];
        for (int e = 0; e < next.length; e++) {
            nextHolders[e] = new int[] {next[e]};
        }
        ExpertPlacement candidate = Balancer.arrange(placement, nextHolders);
        double before = max(Balancer.deviceLoads(placement, load));
        double after = max(Balancer.deviceLoads(candidate, load));
        return after < before && !candidate.equals(placement) ? candidate : null;
    }

    private static double max(double[] v) {
        return v[Balancer.argMax(v)];
    }

    @Override
    public ReplicaSync replicaSync() {
        return ReplicaSync.ALL_REDUCE;
    }
}
