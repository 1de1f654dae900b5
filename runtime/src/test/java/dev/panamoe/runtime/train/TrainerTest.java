package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.data.Batch;
import dev.panamoe.runtime.data.Split;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.parallel.PlacementController;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PlacementPolicy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainerTest {

    @TempDir
    Path dir;

    private static List<float[]> grads(GptMoeModel model) {
        List<float[]> g = new ArrayList<>();
        for (Parameter p : model.parameters()) {
            g.add(p.grad().toFloatArray());
        }
        return g;
    }

    private static double norm(List<float[]> grads) {
        double sum = 0;
        for (float[] g : grads) {
            for (float x : g) {
                sum += (double) x * x;
            }
        }
        return Math.sqrt(sum);
    }

    /**
     * The gradients a first step leaves behind (AdamW reads them, never writes them) and the
     * first moments it makes, (1 - beta1) times the gradients AdamW used, per parameter; and its
     * metrics.
     */
    private static StepMetrics oneStep(float clipNorm, List<List<float[]>> gradsOut, List<List<float[]>> momentsOut) {
        try (GptMoeModel model = TinyRun.newModel(5);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), TinyRun.config().clipNorm(clipNorm).build())) {
            StepMetrics m = trainer.trainStep();
            gradsOut.add(grads(model));
            List<float[]> moments = new ArrayList<>();
            for (Parameter p : model.parameters()) {
                moments.add(trainer.optimizer().state(p.name()).m().toFloatArray());
            }
            momentsOut.add(moments);
            return m;
        }
    }

    @Test
    void clipsTheGlobalGradientNormAndReportsItBeforeClipping() {
        List<List<float[]>> grads = new ArrayList<>();
        List<List<float[]>> moments = new ArrayList<>();
        StepMetrics unclipped = oneStep(0f, grads, moments);
        StepMetrics clipped = oneStep(1e-3f, grads, moments);
        StepMetrics under = oneStep(1e6f, grads, moments);
        List<float[]> raw = grads.get(0);
        assertEquals(norm(raw), unclipped.gradNorm(), 1e-6 * unclipped.gradNorm());
        assertTrue(unclipped.gradNorm() > 1e-2, "the test needs a norm well above the clip, got " + unclipped.gradNorm());
        assertEquals(Double.doubleToLongBits(unclipped.gradNorm()), Double.doubleToLongBits(clipped.gradNorm()));
        // AdamW used the gradients scaled to norm 1e-3 (its first moments are (1 - beta1) times
        // them, so they scale alike) and left the gradients themselves as they were.
        double scale = 1e-3 / unclipped.gradNorm();
        for (int p = 0; p < raw.size(); p++) {
            float[] m = moments.get(0).get(p);
            assertArrayEquals(raw.get(p), grads.get(1).get(p), "clipping leaves the gradients unscaled");
            assertArrayEquals(m, moments.get(2).get(p), "a norm under the clip is left alone");
            for (int i = 0; i < m.length; i++) {
                assertEquals(m[i] * scale, moments.get(1).get(p)[i], 1e-6 * scale * Math.abs(m[i]) + 1e-30,
                        "first moment " + i + " of parameter " + p);
            }
        }
        assertEquals(1e-3, norm(moments.get(1)) / norm(moments.get(0)) * unclipped.gradNorm(), 1e-8);
        assertEquals(unclipped.loss(), clipped.loss(), 0.0, "the same first forward");
        assertEquals(unclipped.loss(), under.loss(), 0.0, "the same first forward");
    }

    @Test
    void runWritesAMetricsLinePerStepWithExpertCountsAndEvaluations() throws Exception {
        Path metrics = dir.resolve("m.jsonl");
        TrainingConfig config = TinyRun.config().metrics(metrics).build();
        try (GptMoeModel model = TinyRun.newModel(5); Trainer trainer = new Trainer(model, TinyRun.corpus(), config)) {
            List<StepMetrics> ran = trainer.run(m -> { });
            assertEquals(8, ran.size());
            assertEquals(8, trainer.step());
            assertEquals(8L * config.batch(), trainer.dataPosition());
            List<String> lines = Files.readAllLines(metrics);
            assertEquals(8, lines.size());
            int slotsPerStep = config.batch() * config.seq() * TinyRun.model().topK();
            for (int s = 1; s <= 8; s++) {
                JsonObject json = JsonParser.parseString(lines.get(s - 1)).getAsJsonObject();
                for (String key : List.of("step", "loss", "val_loss", "tokens_per_s", "aux_loss", "expert_counts")) {
                    assertTrue(json.has(key), "line " + s + " lacks " + key + ": " + lines.get(s - 1));
                }
                assertEquals(s, json.get("step").getAsInt());
                assertEquals(config.evaluatesAt(s), !json.get("val_loss").isJsonNull(), "val_loss at step " + s);
                assertTrue(json.get("tokens_per_s").getAsDouble() > 0);
                assertTrue(json.get("aux_loss").getAsDouble() > 0);
                var layers = json.getAsJsonArray("expert_counts");
                assertEquals(1, layers.size(), "one MoE layer");
                int sum = 0;
                for (var c : layers.get(0).getAsJsonArray()) {
                    sum += c.getAsInt();
                }
                assertEquals(slotsPerStep, sum, "dropless: every token reaches top-k experts");
            }
            StepMetrics third = ran.get(2);
            StepMetrics last = ran.get(7);
            assertTrue(last.valLoss() < third.valLoss(), "training lowers the held-out loss: " + third.valLoss()
                    + " -> " + last.valLoss());
        }
    }

    @Test
    void evaluationCountsTheSourceOfEveryRoutedTokenAndIsRepeatable() {
        SyntheticCorpus corpus = TinyRun.corpus();
        TrainingConfig config = TinyRun.config().evalBatches(3).build();
        try (GptMoeModel model = TinyRun.newModel(5); Trainer trainer = new Trainer(model, corpus, config)) {
            double first = trainer.evaluate();
            long[][][] counts = trainer.expertSourceCounts();
            assertEquals(Double.doubleToLongBits(first), Double.doubleToLongBits(trainer.evaluate()));
            assertEquals(1, counts.length);
            assertEquals(4, counts[0].length);
            long[] perSource = new long[corpus.sourceCount()];
            for (long[] expert : counts[0]) {
                for (int s = 0; s < perSource.length; s++) {
                    perSource[s] += expert[s];
                }
            }
            long[] expected = new long[corpus.sourceCount()];
            int size = config.microBatchSize();
            for (int b = 0; b < config.evalBatches(); b++) {
                Batch batch = corpus.batch(Split.VALIDATION, (long) b * size, size);
                for (int source : batch.sources()) {
                    expected[source] += (long) config.seq() * TinyRun.model().topK();
                }
            }
            assertArrayEquals(expected, perSource);
            assertEquals(0, trainer.step(), "evaluating trains nothing");
        }
    }

    @Test
    void rejectsACorpusThatDoesNotFitTheModelOrConfig() {
        try (GptMoeModel model = TinyRun.newModel(5)) {
            SyntheticCorpus longer = new SyntheticCorpus(TinyRun.corpus().config().withSeqLen(4));
            String message = assertThrows(IllegalArgumentException.class,
                    () -> new Trainer(model, longer, TinyRun.config().build())).getMessage();
            assertEquals("seq: the training config has 8, the corpus 4", message);
            String tooLong = assertThrows(IllegalArgumentException.class, () -> new Trainer(model,
                    new SyntheticCorpus(TinyRun.corpus().config().withSeqLen(16)), TinyRun.config().seq(16).build()))
                    .getMessage();
            assertEquals("seq: 16 exceeds the model's maxSeq 8", tooLong);
        }
    }

    /** A single device's MoE layer has no slots to move experts between (transitional, issue 10). */
    @Test
    void aSingleDeviceRefusesAPlacementPolicy() {
        try (GptMoeModel model = TinyRun.newModel(5);
                Trainer trainer = new Trainer(model, TinyRun.corpus(), TinyRun.config().build())) {
            PlacementPolicy policy = PlacementController.policy("greedy", model.config(), ParallelPlan.SINGLE,
                    trainer.config());
            String message = assertThrows(IllegalStateException.class, () -> trainer.usePlacement(policy)).getMessage();
            assertTrue(message.startsWith("usePlacement: the model of a single device"), message);
        }
    }

    @Test
    void stopAtEndsTheRunEarlyOnTheFullSchedule() {
        TrainingConfig config = TinyRun.config().checkpointDir(dir).stopAt(4).build();
        try (GptMoeModel model = TinyRun.newModel(5); Trainer trainer = new Trainer(model, TinyRun.corpus(), config)) {
            List<StepMetrics> ran = trainer.run(m -> { });
            assertEquals(4, ran.size());
            assertEquals(LrSchedule.of(config).at(4), (float) ran.get(3).lr());
            assertNotEquals(config.minLr(), (float) ran.get(3).lr(), "not decayed as if the run ended at 4");
            assertEquals(4, CheckpointStore.newest(dir).step());
            assertEquals(4, Checkpoint.read(CheckpointStore.single(dir).rankFile(4, 0)).step());
            assertFalse(ran.get(3).evaluated(), "an interrupted run does not evaluate where it stops");
        }
    }
}
