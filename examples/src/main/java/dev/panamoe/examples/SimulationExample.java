package dev.panamoe.examples;

import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PolicyContext;
import dev.panamoe.strategy.simulate.PolicyRun;
import dev.panamoe.strategy.simulate.SimulationReport;
import dev.panamoe.strategy.simulate.Simulator;
import dev.panamoe.strategy.trace.LoadTrace;
import dev.panamoe.strategy.trace.SyntheticTrace;
import java.util.List;
import java.util.Locale;

/**
 * A placement simulation driven from Java (what {@code ./panamoe simulate} does): a seeded synthetic
 * expert-load trace with Zipf-skewed, drifting popularity is replayed through the cost model of 8
 * H100s under the static placement, SmartMoE's greedy policy and ours ({@code smart}).
 * Pure Java: no native library is loaded.
 */
public final class SimulationExample {
    private SimulationExample() {
    }

    public static void main(String[] args) {
        int devices = 8;
        String preset = "gpt-moe-l8-h2048";
        // 64 experts, 8 source ranks, 4 MoE layers, 100 iterations, seed 11.
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(64, devices, 4, 100, 11));
        ModelShape model = GptMoeConfig.preset(preset).toBuilder().experts(trace.experts()).build().shape(preset);
        ClusterSpec cluster = ClusterSpec.parse("h100-nvlink-ib", devices, devices);
        // Every device holds experts (ep = 8); micro-batches of 8 sequences.
        PolicyContext context = new PolicyContext(new CostModel(model, cluster),
                new Skeleton(new ParallelPlan(1, 1, devices, 1), 8, 1, Skeleton.DROPLESS));
        SimulationReport report = new Simulator(context, Simulator.DEFAULT_WINDOW)
                .run(trace, List.of("static", "greedy:10", "smart"));
        for (PolicyRun run : report.runs()) {
            System.out.printf(Locale.ROOT, "%-10s mean iteration %.3f ms  busiest/mean device load %.2f  speedup %.2fx%n",
                    run.policy(), run.meanIterationSeconds() * 1e3, run.maxOverMeanLoad(), report.speedup(run));
        }
    }
}
