package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * Ours: per layer, the cost model chooses between two kinds of change and acts only when the
 * predicted gain over the coming iterations exceeds what the change costs.
 * <ul>
 *   <li><b>Permanent moves</b> of an expert's home (parameters and optimizer state migrate) fix
 *       slow drift: candidates are a few swaps between the busiest and least-loaded device
 *       ({@link Balancer#refine}) and SmartMoE's full LPT reshuffle ({@link Balancer#lpt}).</li>
 *   <li><b>Replicas</b> of the hottest experts in the layer's replicaSlots spare slots per device
 *       (the memory budget) fix what no placement can — an expert hotter than a device's fair
 *       share. A replica is created with its expert's optimizer state and then kept identical by a
 *       per-step gradient all-reduce among the copies ({@link ReplicaSync#ALL_REDUCE}), so, unlike
 *       the per-step planner, it costs no weight copy per step and is re-planned only when the load
 *       calls for it.</li>
 * </ul>
 * Six candidates (home, replicas) — the current home with all, half or none of the replica
 * budget, the refined home with all or none, LPT's home with all; replicas placed by
 * {@link Balancer#replicate} — are each priced as (layer time + replica sync per step) over a horizon
 * H, plus its one-time migration from the current placement; the best one is taken when it beats
 * keeping the current placement. H = the iterations the current placement has lasted, at least
 * the decision period and at most {@value #MAX_PERIOD}: a placement that stayed good is expected
 * to stay good about as long again.
 *
 * <p>The decision period adapts per layer: halved (to {@value #MIN_PERIOD}) after a decision
 * that acted, doubled (to {@value #MAX_PERIOD}) after one that kept — fast drift means frequent
 * decisions, a calm load almost none. Between decisions a cheap check (O(experts)) compares the
 * busiest/mean device load of the last {@value #RECENT} iterations with what was expected at
 * the last decision and decides at once when it is {@value #TRIGGER} worse (a popularity swap).
 */
public final class SmartPolicy implements PlacementPolicy {
    static final int MIN_PERIOD = 2;
    static final int START_PERIOD = 10;
    static final int MAX_PERIOD = 100;
    static final int RECENT = 2;
    static final double TRIGGER = 0.10;

    private final PolicyContext context;
    private final PlacementCosts costs;
    private final int replicaSlots;
    private final List<ExpertPlacement> initial;
    private final List<ExpertPlacement> current;
    private final int[][] home;
    private final long[] lastDecision;
    private final long[] lastChange;
    private final int[] period;
    private final double[] expectedRatio;

    public SmartPolicy(PolicyContext context, int replicaSlots) {
        if (replicaSlots < 0) {
            throw new IllegalArgumentException("replicaSlots: must be >= 0, got " + replicaSlots);
        }
        this.context = context;
        this.costs = new PlacementCosts(context);
        this.replicaSlots = replicaSlots;
        int layers = context.moeLayers();
        ExpertPlacement start = ExpertPlacement.identity(context.experts(), context.devices(), replicaSlots);
        this.initial = Collections.nCopies(layers, start);
        this.current = new ArrayList<>(initial);
        this.home = new int[layers][context.experts()];
        for (int[] h : home) {
            for (int e = 0; e < h.length; e++) {
                h[e] = e / context.nativeSlots();
            }
        }
        this.lastDecision = new long[layers];
        this.lastChange = new long[layers];
        this.period = new int[layers];
        Arrays.fill(period, START_PERIOD);
        this.expectedRatio = new double[layers];
        Arrays.fill(expectedRatio, Double.POSITIVE_INFINITY);
    }

    @Override
    public String name() {
        return "smart:" + replicaSlots;
    }

    @Override
    public List<ExpertPlacement> initial() {
        return initial;
    }

    @Override
    public ReplicaSync replicaSync() {
        return ReplicaSync.ALL_REDUCE;
    }

    /** The decision period layer is on now (for tests and reports). */
    public int period(int layer) {
        return period[layer];
    }

    @Override
    public Optional<List<ExpertPlacement>> decide(long iteration, LoadTracker tracker) {
        boolean changed = false;
        for (int layer = 0; layer < current.size(); layer++) {
            if (tracker.size(layer) < RECENT) {
                continue;
            }
            double[] recent = tracker.mean(layer, RECENT);
            boolean degraded = ratio(current.get(layer), recent) > expectedRatio[layer] * (1 + TRIGGER);
            if (!degraded && iteration - lastDecision[layer] < period[layer]) {
                continue;
            }
            lastDecision[layer] = iteration;
            double[] load = degraded ? recent : tracker.mean(layer, Math.min(period[layer], tracker.window()));
            if (decideLayer(layer, load, iteration)) {
                changed = true;
                lastChange[layer] = iteration;
                period[layer] = Math.max(MIN_PERIOD, period[layer] / 2);
            } else {
                period[layer] = Math.min(MAX_PERIOD, period[layer] * 2);
            }
            expectedRatio[layer] = ratio(current.get(layer), recent);
        }
        return changed ? Optional.of(List.copyOf(current)) : Optional.empty();
    }

    /** Prices the candidates for one layer and takes the best when it pays; true when it changed. */
    private boolean decideLayer(int layer, double[] load, long iteration) {
        ExpertPlacement now = current.get(layer);
        long[][] groupLoad = context.groupLoad(load);
        double horizon = Math.clamp(iteration - lastChange[layer], period[layer], MAX_PERIOD);
        double keep = costs.layerSeconds(now, groupLoad) + costs.syncSeconds(now, ReplicaSync.ALL_REDUCE);
        int devices = now.devices();
        int[] stay = home[layer];
        int[] refined = Balancer.refine(load, stay, devices, devices);
        int[] reshuffled = Balancer.lpt(load, devices, context.nativeSlots(), stay);
        int budget = devices * replicaSlots;
        // (home, replicas); the refined home only when refine moved something
        boolean refinedMoves = !Arrays.equals(refined, stay);
        List<Option> options = new ArrayList<>();
        addOption(options, stay, budget, true);
        addOption(options, refined, budget, refinedMoves);
        addOption(options, stay, budget / 2, budget > 1);
        addOption(options, refined, 0, refinedMoves);
        addOption(options, stay, 0, budget > 0);
        addOption(options, reshuffled, budget, true);
        // per-step saving over the horizon first; migrations (the dearest to price) only in order of
        // that saving and only while one could still beat the best gain, which it bounds
        List<Candidate> candidates = new ArrayList<>();
        List<ExpertPlacement> seen = new ArrayList<>(List.of(now));
        for (Option o : options) {
            ExpertPlacement p = Balancer.arrange(now,
                    Balancer.replicate(load, o.home(), devices, now.slotsPerDevice(), o.replicas()));
            if (seen.contains(p)) {
                continue; // e.g. replication stopped before half the budget: the same as with all of it
            }
            seen.add(p);
            double perStep = costs.layerSeconds(p, groupLoad) + costs.syncSeconds(p, ReplicaSync.ALL_REDUCE);
            candidates.add(new Candidate(o.home(), p, horizon * (keep - perStep)));
        }
        candidates.sort((a, b) -> Double.compare(b.saved(), a.saved()));
        double bestGain = 0;
        Candidate best = null;
        for (Candidate c : candidates) {
            if (c.saved() <= bestGain) {
                break;
            }
            double gain = c.saved() - costs.changeSeconds(now, c.placement(), ReplicaSync.ALL_REDUCE);
            if (gain > bestGain) {
                bestGain = gain;
                best = c;
            }
        }
        if (best == null) {
            return false;
        }
        current.set(layer, best.placement());
        home[layer] = best.home().clone();
        return true;
    }

    private record Option(int[] home, int replicas) {
    }

    private record Candidate(int[] home, ExpertPlacement placement, double saved) {
    }

    private static void addOption(List<Option> options, int[] home, int replicas, boolean when) {
        if (when) {
            options.add(new Option(home, replicas));
        }
    }

    private static double ratio(ExpertPlacement placement, double[] load) {
        return Balancer.maxOverMean(Balancer.deviceLoads(placement, load));
    }
}
