package dev.panamoe.jmh;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Device;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.runner.IterationType;

/**
 * One optimizer step of the GPT-MoE trainer (forward, backward, clipping, AdamW) on the synthetic
 * corpus, for the {@code tiny} and {@code small} presets, in fp32 and in bf16 ({@code train
 * --precision}: bf16 activations and working weights, f32 masters). Tokens per step: {@link #tokensPerStep};
 * tokens/s = tokens per step / time (jmh/README.md). At the end of the trial the trainer's
 * per-operator timer is printed, so the table can show where the time goes.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class TrainingStepBenchmark {

    /** Sequences per step of each preset (at its full sequence length). */
    static int batchOf(String preset) {
        return switch (preset) {
            case "tiny" -> 16;
            case "small" -> 8;
            default -> throw new IllegalArgumentException("preset: no benchmark batch for '" + preset + "'");
        };
    }

    static int tokensPerStep(String preset) {
        return batchOf(preset) * GptMoeConfig.preset(preset).maxSeq();
    }

    @Param({"tiny", "small"})
    public String preset;

    @Param({"fp32", "bf16"})
    public String precision;

    private GptMoeModel model;
    private Trainer trainer;
    private boolean measuring;

    @Setup(Level.Trial)
    public void setup() {
        GptMoeConfig config = GptMoeConfig.preset(preset);
        SyntheticCorpus.Config data = SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.maxSeq());
        TrainingConfig training = TrainingConfig.builder().steps(Integer.MAX_VALUE).batch(batchOf(preset))
                .seq(config.maxSeq()).evalEvery(0).precision(Precision.parse("precision", precision)).build();
        model = new GptMoeModel(CpuBackend.get(), config, 1, training.precision().resolve(Device.CPU).dtype());
        trainer = new Trainer(model, new SyntheticCorpus(data), training);
    }

    /**
     * The operator table covers the measured iterations only: the warm-up's first steps, with the
     * Java code still interpreted, weigh most on the operators of many small calls (AdamW and the
     * gradient norm: one call per parameter), and would blur their comparison across precisions.
     */
    @Setup(Level.Iteration)
    public void startIteration(IterationParams iteration) {
        if (iteration.getType() == IterationType.MEASUREMENT && !measuring) {
            trainer.timer().reset();
            measuring = true;
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        System.out.println();
        System.out.println("operator time shares, " + preset + " in " + precision + " (measured iterations):");
        System.out.println(trainer.timer().table());
        model.close();
    }

    @Benchmark
    public StepMetrics step() {
        return trainer.trainStep();
    }
}
