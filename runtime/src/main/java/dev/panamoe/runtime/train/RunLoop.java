package dev.panamoe.runtime.train;

import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.IntSupplier;
import java.util.function.Supplier;

/** The run loop of the single-device and the parallel trainer. */
public final class RunLoop {
    private RunLoop() {
    }

    /**
     * Runs trainStep until {@link TrainingConfig#stopAt()}: each step's metrics go to metricsFile
     * (none when null; continued from the current step on a resumed run) and to onStep; a
     * checkpoint is saved where {@link TrainingConfig#checkpointsAt} says. Returns the metrics of
     * the steps run.
     */
    public static List<StepMetrics> run(TrainingConfig config, Path metricsFile, IntSupplier step,
            Supplier<StepMetrics> trainStep, Runnable saveCheckpoint, Consumer<StepMetrics> onStep) {
        List<StepMetrics> ran = new ArrayList<>();
        try (MetricsWriter metrics = metricsFile == null ? null
                : step.getAsInt() == 0 ? MetricsWriter.create(metricsFile)
                : MetricsWriter.resume(metricsFile, step.getAsInt())) {
            while (step.getAsInt() < config.stopAt()) {
                StepMetrics m = trainStep.get();
                ran.add(m);
                if (metrics != null) {
                    metrics.write(m);
                }
                onStep.accept(m);
                if (config.checkpointsAt(step.getAsInt())) {
                    saveCheckpoint.run();
                }
            }
        }
        return ran;
    }
}
