package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * The runs the parallel tests compare: the tiny preset with 4 blocks (so pp = 4 divides it), a
 * few optimizer steps of a small batch, by the {@link Trainer} on one device and on a world of
 * in-JVM ranks.
 */
final class ParallelTraining {
    static final int SEQ = 16;
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    /** Losses of each step and each parameter's values (a rank's shard in a parallel run), by name. */
    record Result(List<StepMetrics> steps, Map<String, float[]> values, Map<String, TensorSlice> slices,
            Map<String, int[]> fullShapes) {
    }

    private ParallelTraining() {
    }

    static GptMoeConfig model() {
        return GptMoeConfig.preset("tiny").toBuilder().layers(4).maxSeq(SEQ).build();
    }

    static SyntheticCorpus corpus() {
        return new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(SEQ));
    }

    /**
     * 3 steps of 16 sequences in 2 micro-batches, clipping at a norm the first steps exceed,
     * evaluating at the last. AdamW divides each gradient element by its own magnitude (plus eps),
     * so an element whose gradient is at the rounding-noise level of its tensor (the k bias, rarely
     * routed expert weights, biases) moves by up to lr in a direction the noise decides; eps = 1e-4
     * keeps the updates of such small gradients proportional to them, so that a different but
     * equally exact summation order (TP all-reduces, DP sums) stays a ~1e-6 relative difference
     * instead of being amplified to the size of an update (with eps = 1e-8 the TP plans differ
     * from one device by up to 1e-2 after 3 steps while their gradients agree within 4e-7).
     */
    static TrainingConfig config() {
        return TrainingConfig.builder().steps(3).batch(16).microBatches(2).seq(SEQ).lr(1e-3f).minLr(1e-4f).eps(1e-4f)
                .warmup(1).clipNorm(0.5f).evalEvery(0).evalBatches(2).seed(5).build();
    }

    static Result single(GptMoeConfig modelConfig, TrainingConfig config) {
        try (GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, config.seed(), dtype(config));
                Trainer trainer = new Trainer(model, corpus(), config)) {
            trainer.run(m -> { });
            Map<String, float[]> values = new LinkedHashMap<>();
            for (Parameter p : model.parameters()) {
                values.put(p.name(), p.value().toFloatArray());
            }
            return new Result(trainer.history(), values, Map.of(), Map.of());
        }
    }

    /** The dtype config's precision trains the model in on the CPU. */
    static DType dtype(TrainingConfig config) {
        return config.precision().resolve(Device.CPU).dtype();
    }

    /** Every rank's result, in world rank order. */
    static List<Result> parallel(String plan, int world, GptMoeConfig modelConfig, TrainingConfig config) {
        return parallel(plan, world, modelConfig, config, TIMEOUT, comm -> comm);
    }

    /** The same, each rank's world communicator passed through wrap first (e.g. to make one fail). */
    static List<Result> parallel(String plan, int world, GptMoeConfig modelConfig, TrainingConfig config,
            Duration timeout, UnaryOperator<Communicator> wrap) {
        ParallelPlan parsed = ParallelPlan.parse(plan, world);
        Trainer.validate(parsed, modelConfig, config);
        RankLayout layout = new RankLayout(parsed);
        return InJvmWorld.run(world, timeout, comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, wrap.apply(comm));
                    GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, config.seed(), groups, null,
                            dtype(config));
                    Trainer trainer = new Trainer(model, corpus(), config)) {
                trainer.run(m -> { });
                Map<String, float[]> values = new LinkedHashMap<>();
                Map<String, TensorSlice> slices = new LinkedHashMap<>();
                Map<String, int[]> shapes = new LinkedHashMap<>();
                for (ShardedParameter p : model.shardedParameters()) {
                    values.put(p.name(), p.parameter().value().toFloatArray());
                    slices.put(p.name(), p.slice());
                    shapes.put(p.name(), p.fullShape());
                }
                return new Result(trainer.history(), values, slices, shapes);
            }
        });
    }
}
