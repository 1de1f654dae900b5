package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.strategy.search.PlanPool;
import java.nio.file.Path;
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
