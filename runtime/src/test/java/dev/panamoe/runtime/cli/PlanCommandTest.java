package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.strategy.search.PlanPool;
import dev.panamoe.strategy.trace.SyntheticTrace;
import dev.panamoe.strategy.trace.TraceFiles;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlanCommandTest {

    @TempDir
    Path dir;

    @Test
    void printsThePoolAndWritesItsJson() {
        Path json = dir.resolve("pool.json");
        TrainCommandTest.Result r = TrainCommandTest.run("plan", "--gpus", "64", "--gpus-per-node", "8", "--model",
                "gpt-moe-l16-h2560", "--samples", "2", "--pool-size", "4", "--capacity", "dropless,1.2",
                "--calibration", dir.resolve("no-results").toString(), "--json", json.toString());
        assertEquals(0, r.code(), r.err());
        PlanPool pool = PlanPool.read(json);
        assertEquals(4, pool.pool().size());
        assertEquals("gpt-moe-l16-h2560", pool.model());
        List<String> lines = r.lines();
        int header = indexOf(lines, "step ms");
        assertTrue(lines.get(header).contains("mem GiB") && lines.get(header).contains("plan"), lines.get(header));
        for (int i = 0; i < 4; i++) {
            PlanPool.Entry e = pool.pool().get(i);
            String row = lines.get(header + 1 + i);
            assertTrue(row.strip().startsWith((i + 1) + "  " + e.plan()), row);
            assertTrue(row.contains(String.format(java.util.Locale.ROOT, "%.2f", e.stepSeconds() * 1e3)), row);
            assertTrue(row.contains(e.capacity()), row);
        }
        int why = indexOf(lines, "why the others lost");
        String reasons = String.join("\n", lines.subList(why, lines.size()));
        assertTrue(reasons.contains("slower") && reasons.contains("slower than the best"), reasons);
        assertTrue(reasons.contains("memory") && reasons.contains("GiB per device"), reasons);
        assertTrue(reasons.contains("topology") && reasons.contains("divisibility"), reasons);
        assertTrue(r.out().contains("preset h100-nvlink-ib default"), r.out());
        assertTrue(r.out().contains("wrote the pool to " + json.toAbsolutePath()), r.out());
    }

    @Test
    void scoresUnderATrace() {
        Path trace = dir.resolve("trace");
        TraceFiles.write(SyntheticTrace.generate(SyntheticTrace.Config.of(16, 8, 16, 3, 5)), trace,
                TraceFiles.Format.SMARTMOE);
        Path json = dir.resolve("pool.json");
        TrainCommandTest.Result r = TrainCommandTest.run("plan", "--gpus", "16", "--trace", trace.toString(),
                "--samples", "2", "--pool-size", "2", "--json", json.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(PlanPool.read(json).loads().startsWith("2 iterations of trace"), PlanPool.read(json).loads());
        // a trace of another expert count is refused with both counts
        Path other = dir.resolve("other");
        TraceFiles.write(SyntheticTrace.generate(SyntheticTrace.Config.of(8, 4, 16, 1, 5)), other,
                TraceFiles.Format.SMARTMOE);
        TrainCommandTest.Result bad = TrainCommandTest.run("plan", "--gpus", "16", "--trace", other.toString(),
                "--json", json.toString());
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("'--trace': has 8 experts, model gpt-moe-l16-h2560 has 16"), bad.err());
    }

    @Test
    void badOptionsNameTheOption() {
        TrainCommandTest.Result missing = TrainCommandTest.run("plan", "--model", "gpt-moe-l16-h2560");
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("--gpus"), missing.err());
        TrainCommandTest.Result cluster = TrainCommandTest.run("plan", "--gpus", "8", "--cluster", "tpu-pod",
                "--json", dir.resolve("x.json").toString());
        assertEquals(2, cluster.code());
        assertTrue(cluster.err().contains("Invalid value for option '--cluster': unknown preset 'tpu-pod'"), cluster.err());
        TrainCommandTest.Result capacity = TrainCommandTest.run("plan", "--gpus", "8", "--capacity", "lots",
                "--json", dir.resolve("x.json").toString());
        assertEquals(2, capacity.code());
        assertTrue(capacity.err().contains("Invalid value for option '--capacity': \"lots\""), capacity.err());
        TrainCommandTest.Result zipf = TrainCommandTest.run("plan", "--gpus", "8", "--zipf", "-1");
        assertEquals("panamoe plan: Invalid value for option '--zipf': must be a finite number >= 0, got -1 (see"
                + " 'panamoe plan --help')", zipf.err().strip());
        TrainCommandTest.Result gpus = TrainCommandTest.run("plan", "--gpus", "0");
        assertTrue(gpus.err().contains("Invalid value for option '--gpus': must be >= 1, got 0"), gpus.err());
    }

    @Test
    void writesThePoolOnlyWhenAsked() {
        Path cwd = Path.of("plan-pool.json").toAbsolutePath();
        boolean before = java.nio.file.Files.exists(cwd);
        TrainCommandTest.Result r = TrainCommandTest.run("plan", "--gpus", "8", "--samples", "1", "--pool-size", "1",
                "--calibration", dir.resolve("none").toString());
        assertEquals(0, r.code(), r.err());
        assertEquals(before, java.nio.file.Files.exists(cwd), "no plan-pool.json written without --json");
        assertTrue(!r.out().contains("wrote"), r.out());
    }

    private static int indexOf(List<String> lines, String text) {
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).contains(text)) {
                return i;
            }
        }
        throw new AssertionError("no line contains '" + text + "'");
    }
}
