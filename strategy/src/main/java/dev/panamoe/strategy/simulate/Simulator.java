package dev.panamoe.strategy.simulate;

import dev.panamoe.strategy.cost.ExpertLoad;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.policy.Balancer;
import dev.panamoe.strategy.policy.LoadTracker;
import dev.panamoe.strategy.policy.PlacementCosts;
import dev.panamoe.strategy.policy.PlacementPolicy;
import dev.panamoe.strategy.policy.Policies;
import dev.panamoe.strategy.policy.PolicyContext;
import dev.panamoe.strategy.trace.LoadTrace;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Replays a load trace through the cost model under each policy, as the trainer would run it:
 * before iteration i the policy decides from the tracker (which holds iterations before i, or up
 * to i for a policy that decides within the step), the change is paid for, the step is priced with
 * iteration i's load, and iteration i's counts are recorded.
 *
 * <p>The model's MoE layer l replays the trace's layer l mod trace.layers(); the trace's source
 * ranks feed the cost model's expert-parallel groups as {@link ExpertLoad#forGroup} maps them,
 * rescaled to the skeleton's micro-batch. Every policy is charged with the same
 * {@link PlacementCosts}; a policy's own view of the load (per-expert totals) never sees the
 * per-source detail the simulator prices with.
 *
 * <p>Beside the policies it prices the {@code balanced} bound: each iteration as if every device
 * had exactly the mean expert load ({@link ExpertLoad#balanced}: the same token slots per source,
 * spread evenly over the experts) under the identity placement, with no migration or replica
 * cost — the limit no placement policy can beat by balancing.
 */
public final class Simulator {
    /** Tracker window, in iterations: enough for greedy:100 to average its whole period. */
    public static final int DEFAULT_WINDOW = 100;

    private final PolicyContext context;
    private final PlacementCosts costs;
    private final int window;

    public Simulator(PolicyContext context, int window) {
        if (window < 1) {
            throw new IllegalArgumentException("window: must be >= 1, got " + window);
        }
        this.context = context;
        this.costs = new PlacementCosts(context);
        this.window = window;
    }

    /** Runs every policy of specs (static first if the list lacks it: it is the baseline). */
    public SimulationReport run(LoadTrace trace, List<String> specs) {
        if (trace.experts() != context.experts()) {
            throw new IllegalArgumentException("trace: has " + trace.experts() + " experts, the model "
                    + context.model().name() + " has " + context.experts());
        }
        List<String> names = new ArrayList<>();
        if (specs.stream().noneMatch(s -> s.strip().equalsIgnoreCase("static"))) {
            names.add("static");
        }
        for (String s : specs) {
            names.add(s.strip());
        }
        List<Replay> replays = new ArrayList<>();
        for (String name : names) {
            replays.add(new Replay(name, Policies.create(name, context), trace.iterations()));
        }
        double[] balanced = new double[trace.iterations()];
        for (int i = 0; i < trace.iterations(); i++) {
            long[][][] counts = new long[trace.layers()][][];
            for (int l = 0; l < trace.layers(); l++) {
                counts[l] = trace.sourceLoad(i, l);
            }
            ExpertLoad load = new ExpertLoad(counts);
            for (Replay r : replays) {
                r.step(i, trace, load);
            }
            balanced[i] = context.cost().step(context.skeleton(), null, load.balanced()).seconds();
        }
        List<PolicyRun> runs = replays.stream().map(Replay::result).toList();
        return new SimulationReport(context, trace, runs, balanced);
    }

    /** One policy's replay state. */
    private final class Replay {
        private final String name;
        private final PlacementPolicy policy;
        private final LoadTracker tracker;
        private List<ExpertPlacement> placements;
        private final double[] iterationSeconds;
        private final double[] ratioSum;
        private int changes;
        private long movedSlots;
        private double migrationSeconds;
        private double syncSeconds;
        private long decisionNanos;

        Replay(String name, PlacementPolicy policy, int iterations) {
            this.name = name;
            this.policy = policy;
            this.tracker = new LoadTracker(context.moeLayers(), context.experts(), window);
            this.placements = policy.initial();
            this.iterationSeconds = new double[iterations];
            this.ratioSum = new double[context.moeLayers()];
        }

        void step(int i, LoadTrace trace, ExpertLoad load) {
            if (policy.decidesWithinStep()) {
                record(i, trace);
            }
            long start = System.nanoTime();
            Optional<List<ExpertPlacement>> decision = policy.decide(i, tracker);
            decisionNanos += System.nanoTime() - start;
            double[] migrationByStage = new double[context.plan().pp()];
            if (decision.isPresent()) {
                List<ExpertPlacement> next = decision.get();
                int moved = 0;
                for (int l = 0; l < next.size(); l++) {
                    moved += next.get(l).changedSlots(placements.get(l));
                    migrationByStage[context.stageOf(l)] += costs.changeSeconds(placements.get(l), next.get(l),
                            policy.replicaSync());
                }
                if (moved > 0) {
                    changes++;
                    movedSlots += moved;
                }
                placements = next;
            }
            double[] syncByStage = new double[context.plan().pp()];
            for (int l = 0; l < placements.size(); l++) {
                syncByStage[context.stageOf(l)] += costs.syncSeconds(placements.get(l), policy.replicaSync());
                double[] layerLoad = Balancer.toDouble(trace.layerLoad(i, l % trace.layers()));
                ratioSum[l] += Balancer.maxOverMean(Balancer.deviceLoads(placements.get(l), layerLoad));
            }
            double migration = max(migrationByStage);
            double sync = max(syncByStage);
            migrationSeconds += migration;
            syncSeconds += sync;
            iterationSeconds[i] = context.cost().step(context.skeleton(), placements, load).seconds() + sync + migration;
            if (!policy.decidesWithinStep()) {
                record(i, trace);
            }
        }

        private void record(int i, LoadTrace trace) {
            for (int l = 0; l < context.moeLayers(); l++) {
                tracker.record(l, trace.layerLoad(i, l % trace.layers()));
            }
        }

        PolicyRun result() {
            double[] ratio = new double[ratioSum.length];
            for (int l = 0; l < ratio.length; l++) {
                ratio[l] = ratioSum[l] / iterationSeconds.length;
            }
            return new PolicyRun(name, iterationSeconds, ratio, changes, movedSlots, migrationSeconds, syncSeconds,
                    decisionNanos);
        }
    }

    private static double max(double[] v) {
        double m = 0;
        for (double x : v) {
            m = Math.max(m, x);
        }
        return m;
    }
}
