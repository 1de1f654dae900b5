package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code train --placement}: a placement policy changes where experts live, not what the run computes. */
class PlacementTrainCommandTest {
    private static final List<String> RUN = List.of("train", "--steps", "4", "--batch", "8", "--micro-batches", "2",
            "--seq", "16", "--eval-every", "0", "--world", "4", "--plan", "ep=4");

    @TempDir
    Path dir;

    private static Result run(String... more) {
        List<String> args = new java.util.ArrayList<>(RUN);
        args.addAll(List.of(more));
        return TrainCommandTest.run(args.toArray(String[]::new));
    }

    @Test
    void greedyEveryStepTrainsLikeStatic() {
        Path still = dir.resolve("static.jsonl");
        Path greedy = dir.resolve("greedy.jsonl");
        Result s = run("--metrics", still.toString());
        assertEquals(0, s.code(), s.err());
        Result g = run("--metrics", greedy.toString(), "--placement", "greedy:1");
        assertEquals(0, g.code(), g.err());
        assertTrue(g.out().contains("placement: greedy:1; cost model: cluster cpu of 4 ranks, default rates"), g.out());
        assertTrue(g.out().matches("(?s).*placement: \\d+ layer placement changes \\(greedy:1\\).*"), g.out());
        List<StepMetrics> expected = MetricsWriter.read(still);
        List<StepMetrics> got = MetricsWriter.read(greedy);
        assertEquals(expected.size(), got.size());
        for (int i = 0; i < expected.size(); i++) {
            double rel = Math.abs(got.get(i).loss() - expected.get(i).loss()) / expected.get(i).loss();
            assertTrue(rel < 1e-5, "step " + (i + 1) + ": " + got.get(i).loss() + " vs " + expected.get(i).loss());
        }
    }

    @Test
    void replicaAndSmartTrainLikeStatic() {
        Path still = dir.resolve("static.jsonl");
        Result s = run("--metrics", still.toString());
        assertEquals(0, s.code(), s.err());
        for (String policy : List.of("replica", "smart")) {
            Path file = dir.resolve(policy + ".jsonl");
            Result r = run("--metrics", file.toString(), "--placement", policy);
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("layer placement changes (" + policy), r.out());
            List<StepMetrics> expected = MetricsWriter.read(still);
            List<StepMetrics> got = MetricsWriter.read(file);
            for (int i = 0; i < expected.size(); i++) {
                double rel = Math.abs(got.get(i).loss() - expected.get(i).loss()) / expected.get(i).loss();
                assertTrue(rel < 1e-5, policy + " step " + (i + 1) + ": " + got.get(i).loss() + " vs "
                        + expected.get(i).loss());
            }
        }
    }

    @Test
    void badPolicyAndCheckpointAreRefused() {
        Result bad = run("--placement", "bogus:3");
        assertNotEquals(0, bad.code());
        assertTrue(bad.err().contains("bogus"), bad.err());
        Result ck = run("--placement", "greedy", "--checkpoint", dir.resolve("ck").toString());
        assertNotEquals(0, ck.code());
        assertTrue(ck.err().contains("--placement greedy cannot be combined with --checkpoint"), ck.err());
    }
}
