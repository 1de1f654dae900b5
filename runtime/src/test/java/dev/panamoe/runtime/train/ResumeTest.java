package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A run stopped with stopAt and resumed from its checkpoint is bitwise the uninterrupted run. */
class ResumeTest {

    @TempDir
    Path dir;

    private static void assertBitwiseEqual(StepMetrics expected, StepMetrics actual) {
        String at = "step " + expected.step();
        assertEquals(expected.step(), actual.step());
        assertEquals(Double.doubleToRawLongBits(expected.loss()), Double.doubleToRawLongBits(actual.loss()), at + " loss");
        assertEquals(Double.doubleToRawLongBits(expected.valLoss()), Double.doubleToRawLongBits(actual.valLoss()),
                at + " val_loss");
        assertEquals(Double.doubleToRawLongBits(expected.auxLoss()), Double.doubleToRawLongBits(actual.auxLoss()),
                at + " aux_loss");
        assertEquals(Double.doubleToRawLongBits(expected.gradNorm()), Double.doubleToRawLongBits(actual.gradNorm()),
                at + " grad_norm");
        assertEquals(Double.doubleToRawLongBits(expected.lr()), Double.doubleToRawLongBits(actual.lr()), at + " lr");
        assertArrayEquals(expected.expertCounts(), actual.expertCounts(), at + " expert counts");
    }

    @Test
    void stoppedAndResumedRunRepeatsTheUninterruptedLossesBitForBit() {
        TrainingConfig full = TinyRun.config().steps(9).metrics(dir.resolve("full.jsonl")).build();
        List<StepMetrics> uninterrupted;
        List<float[]> finalValues;
        try (GptMoeModel model = TinyRun.newModel(5); Trainer trainer = new Trainer(model, TinyRun.corpus(), full)) {
            uninterrupted = trainer.run(m -> { });
            finalValues = TinyRun.values(model);
        }

        Path metrics = dir.resolve("split.jsonl");
        TrainingConfig split = full.toBuilder().metrics(metrics).checkpointDir(dir.resolve("ck")).build();
        try (GptMoeModel model = TinyRun.newModel(5);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), split.toBuilder().stopAt(5).build())) {
            assertEquals(5, trainer.run(m -> { }).size());
            // A step after the checkpoint whose metrics line reached the file: what a crash in step 7 leaves.
            try (MetricsWriter w = MetricsWriter.resume(metrics, 5)) {
                w.write(trainer.trainStep());
            }
        }
        List<StepMetrics> resumed;
        // Another initialisation: everything must come from the checkpoint.
        try (GptMoeModel model = TinyRun.newModel(1234); Trainer trainer = new Trainer(model, TinyRun.corpus(), split)) {
            trainer.resume();
            assertEquals(5, trainer.step());
            resumed = trainer.run(m -> { });
            List<float[]> values = TinyRun.values(model);
            for (int i = 0; i < finalValues.size(); i++) {
                assertArrayEquals(finalValues.get(i), values.get(i), "parameter " + i + " after the last step");
            }
        }
        assertEquals(4, resumed.size());
        for (int i = 0; i < resumed.size(); i++) {
            assertBitwiseEqual(uninterrupted.get(5 + i), resumed.get(i));
        }
        // The metrics file of the split run reads as the uninterrupted one's (bar the timings).
        List<StepMetrics> fromFile = MetricsWriter.read(metrics);
        assertEquals(9, fromFile.size());
        for (int i = 0; i < 9; i++) {
            assertBitwiseEqual(uninterrupted.get(i), fromFile.get(i));
        }
    }
}
