package dev.panamoe.strategy.simulate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PolicyContext;
import dev.panamoe.strategy.trace.LoadTrace;
import dev.panamoe.strategy.trace.SyntheticTrace;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class SimulatorTest {

    static final List<String> POLICIES = List.of("static", "greedy:10", "greedy:100", "replica", "smart");

    /** SmartMoE's GPT-MoE shape with hidden 1536, 4 MoE blocks (the simulator needs only their shape). */
    static ModelShape model(int experts) {
        return new ModelShape("gpt-moe-h1536", 50257, 1024, 4, 1536, 16, 1, experts, 2, 3072, false, 6144, true);
    }

    static PolicyContext context(String cluster, int gpus, int experts) {
        CostModel cost = new CostModel(model(experts), ClusterSpec.preset(cluster, gpus, 8));
        return new PolicyContext(cost, new Skeleton(new ParallelPlan(1, 1, gpus, 1), 4, 1, Skeleton.DROPLESS));
    }

    /**
     * The acceptance check: on synthetic traces (Zipf 1, drift, swaps) smart beats
     * greedy:10 and replica on mean predicted iteration time, and greedy:10 on the busiest/mean
     * device load. One node of H100s, two nodes of H100s (replicas cross InfiniBand), one node of
     * SmartMoE-era V100s on PCIe (moves are expensive).
     */
    @ParameterizedTest
    @CsvSource({"h100-nvlink-ib, 8, 64, 7", "h100-nvlink-ib, 16, 64, 8", "v100-pcie-eth, 8, 32, 9"})
    void smartBeatsGreedyAndReplicaOnSyntheticTraces(String cluster, int gpus, int experts, long seed) {
        PolicyContext ctx = context(cluster, gpus, experts);
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(experts, gpus, 4, 200, seed));
        SimulationReport report = new Simulator(ctx, Simulator.DEFAULT_WINDOW).run(trace, POLICIES);
        System.out.printf(Locale.ROOT, "%s, %d GPUs, %d experts:%n%s", cluster, gpus, experts, report.table());
        PolicyRun smart = report.run("smart");
        PolicyRun greedy = report.run("greedy:10");
        PolicyRun replica = report.run("replica");
        double overGreedy = greedy.meanIterationSeconds() / smart.meanIterationSeconds();
        double overReplica = replica.meanIterationSeconds() / smart.meanIterationSeconds();
        System.out.printf(Locale.ROOT, "smart: %.3fx greedy:10, %.3fx replica; max/mean %.3f vs greedy:10 %.3f%n%n",
                overGreedy, overReplica, smart.maxOverMeanLoad(), greedy.maxOverMeanLoad());
        assertTrue(overGreedy > 1, "smart vs greedy:10: " + overGreedy);
        assertTrue(overReplica > 1, "smart vs replica: " + overReplica);
        assertTrue(smart.maxOverMeanLoad() < greedy.maxOverMeanLoad(),
                smart.maxOverMeanLoad() + " vs " + greedy.maxOverMeanLoad());
        assertTrue(report.speedup(smart) > 1.1, "smart over static: " + report.speedup(smart));
    }

    @Test
    void staticIsTheBaselineAndChangesAreCounted() {
        PolicyContext ctx = context("h100-nvlink-ib", 8, 32);
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(32, 8, 2, 40, 1));
        SimulationReport report = new Simulator(ctx, 20).run(trace, List.of("greedy:10"));
        assertEquals(List.of("static", "greedy:10"), report.runs().stream().map(PolicyRun::policy).toList());
        PolicyRun base = report.baseline();
        assertEquals(0, base.changes());
        assertEquals(0, base.movedSlots());
        assertEquals(1.0, report.speedup(base), 0);
        assertEquals(40, base.iterationSeconds().length);
        // a static placement is priced by the cost model alone: no sync, no migration
        assertEquals(0, base.syncSeconds() + base.migrationSeconds(), 0);
        PolicyRun greedy = report.run("greedy:10");
        assertTrue(greedy.changes() <= 3, "greedy:10 decides at 10, 20, 30 only: " + greedy.changes());
        assertTrue(greedy.changes() == 0 || greedy.migrationSeconds() > 0);
        // a model with 4 MoE layers replays the trace's 2 layers twice: layers 0 and 2 alike under static
        assertEquals(base.maxOverMeanByLayer()[0], base.maxOverMeanByLayer()[2], 1e-12);
    }

    @Test
    void jsonHoldsEachPolicyUnderItsString() {
        PolicyContext ctx = context("h100-nvlink-ib", 8, 32);
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(32, 8, 4, 30, 2));
        SimulationReport report = new Simulator(ctx, 20).run(trace, List.of("static", "replica:2", "smart"));
        JsonObject policies = JsonParser.parseString(report.toJson()).getAsJsonObject().getAsJsonObject("policies");
        assertEquals(3, policies.size());
        for (String p : List.of("static", "replica:2", "smart")) {
            JsonObject o = policies.getAsJsonObject(p);
            assertEquals(report.run(p).meanIterationSeconds() * 1e3, o.get("mean_iter_ms").getAsDouble(), 1e-9);
            assertEquals(report.run(p).maxOverMeanLoad(), o.get("max_over_mean_load").getAsDouble(), 1e-12);
            assertEquals(report.run(p).changes(), o.get("changes").getAsInt());
            assertEquals(30, o.getAsJsonArray("iter_ms").size());
        }
        assertTrue(report.table().lines().anyMatch(l -> l.startsWith("replica:2 ")), report.table());
    }

    @Test
    void aTraceWithOtherExpertsIsRefused() {
        PolicyContext ctx = context("h100-nvlink-ib", 8, 32);
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(16, 8, 1, 2, 2));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> new Simulator(ctx, 10).run(trace, List.of("static"))).getMessage().contains("16 experts"));
    }
}
