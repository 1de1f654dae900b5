package dev.panamoe.jmh;

import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.strategy.cost.Calibration;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.ExpertLoad;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.search.LoadSamples;
import dev.panamoe.strategy.search.PlanPool;
import dev.panamoe.strategy.search.PlanSearch;
import java.util.List;
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
 * The offline plan search as {@code ./panamoe plan} runs it (SmartMoE's GPT-MoE 16 x 2560, 16
 * experts; h100-nvlink-ib, 8 per node; global batch 2 x gpus; dropless and capacity 1.2; 2 Zipf
 * samples; pool of 8), and the per-MoE-layer price a placement policy asks the cost model for
 * many times per decision (64 devices x 256 experts, 2 spare slots per device).
 */
@Fork(value = 1)
public class PlanSearchBenchmark {

    /** The search's inputs for a cluster of gpus devices. */
    @State(Scope.Benchmark)
    public static class Search {
        @Param({"64", "1024"})
        public int gpus;

        CostModel cost;
        PlanSearch.Spec spec;

        @Setup(Level.Trial)
        public void setup() {
            ModelShape model = GptMoeConfig.preset("gpt-moe-l16-h2560").shape();
            cost = new CostModel(model, ClusterSpec.preset("h100-nvlink-ib", gpus, 8));
            spec = new PlanSearch.Spec(2 * gpus, List.of(Skeleton.DROPLESS, 1.2), 8,
                    LoadSamples.zipf(model, Math.min(gpus, 64), 2, 1.0, 1), "zipf");
        }
    }

    /** One whole search in a fresh JVM state per shot (no warm-up): what a user waits for. */
    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 0)
    @Measurement(iterations = 5)
    public PlanPool search(Search s) {
        return PlanSearch.search(s.cost, Calibration.defaults(), s.spec);
    }

    /** The per-layer price for 64 devices x 256 experts (one policy candidate). */
    @State(Scope.Benchmark)
    public static class Layer {
        final ModelShape model = new ModelShape("deepseek-like", 32000, 4096, 4, 7168, 56, 1, 256, 8, 2048, true,
                18432, false);
        final CostModel cost = new CostModel(model, ClusterSpec.preset("h100-nvlink-ib", 64, 8));
        final ParallelPlan plan = ParallelPlan.parse("ep=64", 64);
        final ExpertPlacement placement = ExpertPlacement.identity(256, 64, 2);
        final long[][] load = ExpertLoad.zipf(1, 64, 256, 8 * 4096, 1.0, 3).forGroup(0, 0, 64, 8 * 4096);
        final CostModel.LayerPricer pricer = cost.layerPricer(plan, 0, load);
    }

    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Warmup(iterations = 3, time = 1)
    @Measurement(iterations = 5, time = 1)
    public double moeLayerSeconds(Layer l) {
        return l.cost.moeLayerSeconds(l.plan, l.placement, l.load);
    }

    /** One more candidate placement under a load already summed ({@link CostModel#layerPricer}). */
    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Warmup(iterations = 3, time = 1)
    @Measurement(iterations = 5, time = 1)
    public double layerPricer(Layer l) {
        return l.pricer.seconds(l.placement);
    }
}
