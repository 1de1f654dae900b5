package dev.panamoe.jmh;

import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.LoadTracker;
import dev.panamoe.strategy.policy.PlacementPolicy;
import dev.panamoe.strategy.policy.Policies;
import dev.panamoe.strategy.policy.PolicyContext;
import dev.panamoe.strategy.trace.LoadTrace;
import dev.panamoe.strategy.trace.SyntheticTrace;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Time of one placement decision for one MoE layer of 256 experts on 64 devices (8 nodes of 8
 * H100s; DeepSeek-V3's expert shape), from a tracker holding 100 iterations of a synthetic trace.
 * Each invocation gets a fresh policy at the iteration where it decides, so the full decision runs:
 * greedy's LPT, the replica planner, or every candidate smart prices with the cost model.
 * {@code smartCheck} is smart between decisions (the per-iteration trigger check).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class PolicyDecisionBenchmark {
    static final int DEVICES = 64;
    static final int EXPERTS = 256;

    @Param({"smart", "greedy:10", "replica"})
    public String policy;

    private final PolicyContext context = context();
    private final LoadTracker tracker = tracker();
    private PlacementPolicy fresh;

    static PolicyContext context() {
        ModelShape model = new ModelShape("deepseek-v3-moe-layer", 129280, 4096, 1, 7168, 128, 1, EXPERTS, 8, 2048,
                true, 18432, false);
        CostModel cost = new CostModel(model, ClusterSpec.preset("h100-nvlink-ib", DEVICES, 8));
        return new PolicyContext(cost, new Skeleton(new ParallelPlan(1, 1, DEVICES, 1), 1, 4, Skeleton.DROPLESS));
    }

    static LoadTracker tracker() {
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(EXPERTS, DEVICES, 1, 100, 1));
        LoadTracker tracker = new LoadTracker(1, EXPERTS, 100);
        for (int i = 0; i < trace.iterations(); i++) {
            tracker.record(0, trace.layerLoad(i, 0));
        }
        return tracker;
    }

    @Setup(Level.Invocation)
    public void freshPolicy() {
        fresh = Policies.create(policy, context);
    }

    @Benchmark
    public Optional<List<ExpertPlacement>> decide() {
        return fresh.decide(10, tracker);
    }

    /** Smart right after a decision: only the cheap check that the load has not run away. */
    @State(Scope.Benchmark)
    public static class AfterDecision {
        final LoadTracker tracker = tracker();
        final PlacementPolicy smart = Policies.create("smart", context());

        @Setup
        public void decideOnce() {
            smart.decide(10, tracker);
        }
    }

    @Benchmark
    @Fork(value = 1)
    public Optional<List<ExpertPlacement>> smartCheck(AfterDecision s) {
        return s.smart.decide(11, s.tracker);
    }
}
