package dev.panamoe.strategy.search;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.strategy.cost.Calibration;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.ExpertLoad;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.cost.StepEstimate;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.search.PlanPool.Reason;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlanSearchTest {
    static final ModelShape GPT = new ModelShape("gpt-moe-l16-h2560", 50257, 1024, 16, 2560, 16, 1, 16, 2, 5120,
            false, 10240, true);

    @TempDir
    Path dir;

    static PlanPool search(int gpus, String cluster, int poolSize) {
        CostModel cost = new CostModel(GPT, ClusterSpec.parse(cluster, gpus, 8));
        List<ExpertLoad> loads = LoadSamples.zipf(GPT, 16, 2, 1.0, 11);
        return PlanSearch.search(cost, Calibration.defaults(), new PlanSearch.Spec(2 * gpus,
                List.of(Skeleton.DROPLESS, 1.2), poolSize, loads, "2 Zipf samples"));
    }

    @Test
    void poolHoldsOnlyFeasiblePlansFastestFirst() {
        PlanPool pool = search(32, "h100-nvlink-ib", 6);
        assertEquals(6, pool.pool().size());
        CostModel cost = new CostModel(GPT, ClusterSpec.preset("h100-nvlink-ib", 32, 8));
        double previous = 0;
        Set<String> plans = new HashSet<>();
        for (PlanPool.Entry e : pool.pool()) {
            assertTrue(e.stepSeconds() >= previous, "sorted: " + e.plan());
            previous = e.stepSeconds();
            ParallelPlan plan = e.parallelPlan();
            assertEquals(32, plan.world());
            plan.validate(GPT);
            assertTrue(plan.tp() <= 8);
            assertEquals(64, e.skeleton().globalBatch());
            assertTrue(e.memoryBytes() <= cost.cluster().memoryBytes());
            // the pooled time is the cost model's mean over the samples
            double mean = LoadSamples.zipf(GPT, 16, 2, 1.0, 11).stream()
                    .mapToDouble(l -> cost.step(e.skeleton(), null, l).seconds()).average().orElseThrow();
            assertEquals(mean, e.stepSeconds(), 1e-12 * mean);
            assertTrue(plans.add(e.plan() + e.capacity()), "one micro-batch per plan and capacity");
        }
        // every skeleton is accounted for, and every slower one really is slower
        assertEquals(pool.considered(), pool.pool().size() + pool.rejected().size());
        double last = pool.pool().getLast().stepSeconds();
        double best = pool.pool().getFirst().stepSeconds();
        for (PlanPool.Rejection r : pool.rejected()) {
            if (r.reason() == Reason.SLOWER) {
                assertTrue(best * (1 + r.slowerPercent() / 100) >= last * (1 - 1e-12), r.toString());
            }
        }
    }

    @Test
    void rejectionsSayWhy() {
        PlanPool pool = search(32, "h100-nvlink-ib:memory-gib=30", 4);
        Set<Reason> reasons = new HashSet<>();
        for (PlanPool.Rejection r : pool.rejected()) {
            reasons.add(r.reason());
            assertFalse(r.detail().isBlank());
        }
        // tp 16 and 32 are wider than a node; tp 32 also does not divide 16 heads; ep 32 > 16 experts;
        // dp 64 does not divide the batch
        assertTrue(reasons.containsAll(Set.of(Reason.TOPOLOGY, Reason.DIVISIBILITY, Reason.MEMORY, Reason.MICRO_BATCH,
                Reason.SLOWER)), reasons.toString());
        PlanPool.Rejection memory = pool.rejected().stream().filter(r -> r.reason() == Reason.MEMORY).findFirst()
                .orElseThrow();
        assertTrue(memory.detail().contains("GiB per device, 30.0 GiB available"), memory.detail());
        assertTrue(pool.rejected().stream().anyMatch(r -> r.reason() == Reason.DIVISIBILITY
                && r.detail().contains("ep=32 does not divide experts")));
        // no pooled plan needs more than the 30 GiB
        assertTrue(pool.pool().stream().allMatch(e -> e.memoryBytes() <= 30.0 * (1L << 30)));
        PlanPool batch = PlanSearch.search(new CostModel(GPT, ClusterSpec.preset("h100-nvlink-ib", 16, 8)),
                Calibration.defaults(), new PlanSearch.Spec(8, List.of(Skeleton.DROPLESS), 4,
                        LoadSamples.zipf(GPT, 16, 1, 1.0, 1), "zipf"));
        assertTrue(batch.rejected().stream().anyMatch(r -> r.reason() == Reason.BATCH
                && r.detail().contains("ep*edp=16 does not divide the global batch 8")));
    }

    @Test
    void infeasibleClusterGivesAnEmptyPool() {
        PlanPool pool = search(8, "h100-nvlink-ib:memory-gib=1", 4);
        assertTrue(pool.pool().isEmpty());
        assertTrue(pool.rejected().stream().anyMatch(r -> r.reason() == Reason.MEMORY));
    }

    @Test
    void jsonRoundTrip() {
        PlanPool pool = search(16, "h100-nvlink-ib", 3);
        Path file = dir.resolve("sub/pool.json");
        pool.write(file);
        PlanPool back = PlanPool.read(file);
        assertEquals(pool, back);
        assertEquals(pool.pool().getFirst().skeleton(), back.pool().getFirst().skeleton());
        assertTrue(pool.toJson().contains("\"stepSeconds\""));
        assertFalse(pool.toJson().contains("NaN"), "standard JSON: unscored rejections have no slowerPercent");
    }

    @Test
    void traceSamplesDriveTheScore() {
        // a skewed load makes the expert-parallel plans slower than under uniform load
        ModelShape small = new ModelShape("small", 256, 256, 4, 256, 8, 1, 8, 2, 512, false, 1024, true);
        CostModel cost = new CostModel(small, ClusterSpec.preset("h100-nvlink-ib", 8, 8));
        Skeleton s = new Skeleton(ParallelPlan.parse("ep=8", 8), 1, 1, Skeleton.DROPLESS);
        StepEstimate uniform = cost.step(s, null, ExpertLoad.uniform(4, 8, 8, 512));
        StepEstimate skewed = cost.step(s, null, ExpertLoad.zipf(4, 8, 8, 512, 1.5, 2));
        assertTrue(skewed.seconds() > uniform.seconds());
        assertTrue(skewed.maxOverMeanLoad() > 1.5);
        assertEquals(1.0, uniform.maxOverMeanLoad(), 1e-12);
    }
}
