package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.strategy.search.PlanPool;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code plan --json} for 4 in-JVM ranks, then {@code train --plan-pool}: the pool's best fitting plan trains. */
class PlanPoolTrainCommandTest {

    @TempDir
    Path dir;

    private Path pool() {
        Path json = dir.resolve("pool.json");
        Result r = TrainCommandTest.run("plan", "--gpus", "4", "--gpus-per-node", "4", "--model", "tiny", "--cluster",
                "cpu", "--batch", "8", "--samples", "1", "--pool-size", "3", "--calibration",
                dir.resolve("no-results").toString(), "--json", json.toString());
        assertEquals(0, r.code(), r.err());
        return json;
    }

    @Test
    void trainsWithTheFastestEntryThatFits() {
        Path json = pool();
        PlanPool pool = PlanPool.read(json);
        assertTrue(!pool.pool().isEmpty(), "the pool has entries");
        PlanPool.Entry best = pool.pool().getFirst();
        Path metrics = dir.resolve("m.jsonl");
        Result t = TrainCommandTest.run("train", "--world", "4", "--plan-pool", json.toString(), "--steps", "2",
                "--batch", "8", "--seq", "16", "--eval-every", "0", "--metrics", metrics.toString());
        assertEquals(0, t.code(), t.err());
        assertTrue(t.out().contains("using #1 " + best.plan() + ", micro-batches " + best.microBatches()), t.out());
        assertTrue(t.out().contains("the fastest entry of the pool, and it fits this run"), t.out());
        assertEquals(2, MetricsWriter.read(metrics).size());
        assertTrue(Double.isFinite(MetricsWriter.read(metrics).getLast().loss()));
    }

    /**
     * In bf16: the pool's best entry trains step 1 (the header says bf16), and the run resumed on
     * the pool's second entry's plan continues in bf16 — the checkpoint's precision — where the
     * uninterrupted run on the best entry would: step 2's loss within 1e-3 (plans agree in bf16
     * within that, MixedPrecisionTrainingTest; measured on 2026-12-05: 8.7e-6), step 1's bit for
     * bit. A resumed run that kept the initial bf16 working copies instead of rounding them from
     * the masters read was 2.7e-3 off.
     */
    @Test
    void aBf16RunTrainsWithThePoolsEntryAndResumesOnAnotherPlan() {
        Path json = pool();
        PlanPool pool = PlanPool.read(json);
        assertTrue(pool.pool().size() >= 2, "the pool has two entries");
        String best = pool.pool().get(0).plan();
        String other = pool.pool().get(1).plan();
        assertNotEquals(best, other);
        String[] run = {"train", "--world", "4", "--plan-pool", json.toString(), "--precision", "bf16", "--steps", "2",
            "--batch", "8", "--seq", "16", "--eval-every", "0"};
        Path whole = dir.resolve("whole.jsonl");
        Result uninterrupted = TrainCommandTest.run(concat(run, "--metrics", whole.toString()));
        assertEquals(0, uninterrupted.code(), uninterrupted.err());
        assertTrue(uninterrupted.out().contains("using #1 " + best), uninterrupted.out());
        assertTrue(uninterrupted.out().contains("precision: bf16 (requested)"), uninterrupted.out());

        Path metrics = dir.resolve("split.jsonl");
        Path checkpoints = dir.resolve("ck");
        Result first = TrainCommandTest.run(concat(run, "--metrics", metrics.toString(), "--checkpoint",
                checkpoints.toString(), "--stop-at", "1"));
        assertEquals(0, first.code(), first.err());
        Result moved = TrainCommandTest.run("train", "--checkpoint", checkpoints.toString(), "--resume", "--world", "4",
                "--plan", other);
        assertEquals(0, moved.code(), moved.err());
        assertTrue(moved.out().contains("precision: bf16 (requested)"), moved.out());
        assertTrue(moved.out().contains("plan " + other), moved.out());

        List<StepMetrics> want = MetricsWriter.read(whole);
        List<StepMetrics> got = MetricsWriter.read(metrics);
        assertEquals(2, got.size(), moved.out());
        assertEquals(want.getFirst().loss(), got.getFirst().loss(), "step 1 on the same plan");
        double step2 = Math.abs(got.get(1).loss() - want.get(1).loss()) / want.get(1).loss();
        System.out.printf(java.util.Locale.ROOT, "bf16 step 2 resumed on %s vs on %s: relative difference %.2e%n",
                other, best, step2);
        assertTrue(step2 <= 1e-3, "step 2 on " + other + ": " + got.get(1).loss() + ", on " + best + ": "
                + want.get(1).loss());
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    @Test
    void aPoolWithNoFittingEntryIsAClearError() {
        Path json = pool();
        PlanPool.Entry best = PlanPool.read(json).pool().getFirst();
        Result t = TrainCommandTest.run("train", "--world", "2", "--plan-pool", json.toString(), "--steps", "1",
                "--batch", "8", "--seq", "16", "--eval-every", "0");
        assertNotEquals(0, t.code());
        assertTrue(t.err().contains("no entry fits a run of 2 ranks of model tiny"), t.err());
        assertTrue(t.err().contains("#1 " + best.plan() + ": needs 4 ranks, the run has 2"), t.err());
        Result other = TrainCommandTest.run("train", "--world", "4", "--preset", "small", "--plan-pool",
                json.toString(), "--steps", "1");
        assertNotEquals(0, other.code());
        assertTrue(other.err().contains("the pool was searched for model tiny, this run trains small"), other.err());
        Result both = TrainCommandTest.run("train", "--world", "4", "--plan", "dp=4", "--plan-pool", json.toString());
        assertNotEquals(0, both.code());
        assertTrue(both.err().contains("--plan-pool and --plan cannot both be given"), both.err());
    }
}
