package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code train --world N --plan SPEC}: the in-JVM world trains like one rank, with one rank's output. */
class ParallelTrainCommandTest {
    private static final String[] SMALL_RUN = {"train", "--steps", "3", "--batch", "8", "--micro-batches", "2", "--seq",
        "16", "--eval-every", "3", "--eval-batches", "2"};

    @TempDir
    Path dir;

    private static String[] with(String... more) {
        String[] args = new String[SMALL_RUN.length + more.length];
        System.arraycopy(SMALL_RUN, 0, args, 0, SMALL_RUN.length);
        System.arraycopy(more, 0, args, SMALL_RUN.length, more.length);
        return args;
    }

    @Test
    void worldOfEightTrainsLikeOneRankAndWritesOnce() {
        Path one = dir.resolve("one.jsonl");
        Path eight = dir.resolve("eight.jsonl");
        Result single = TrainCommandTest.run(with("--metrics", one.toString()));
        assertEquals(0, single.code(), single.err());
        Result parallel = TrainCommandTest.run(with("--world", "8", "--plan", "pp=2,dp=2,ep=2", "--metrics",
                eight.toString(), "--collective-timeout", "30"));
        assertEquals(0, parallel.code(), parallel.err());

        List<StepMetrics> expected = MetricsWriter.read(one);
        List<StepMetrics> got = MetricsWriter.read(eight);
        assertEquals(3, got.size(), "one metrics line per step, written by rank 0 alone");
        for (int s = 0; s < expected.size(); s++) {
            double rel = Math.abs(got.get(s).loss() - expected.get(s).loss()) / expected.get(s).loss();
            assertTrue(rel < 1e-5, "step " + (s + 1) + ": " + got.get(s).loss() + " vs " + expected.get(s).loss());
        }
        double valRel = Math.abs(got.getLast().valLoss() - expected.getLast().valLoss()) / expected.getLast().valLoss();
        assertTrue(valRel < 1e-5, got.getLast().valLoss() + " vs " + expected.getLast().valLoss());
        assertEquals(1, count(parallel.lines(), "parallel: 8 ranks (in-jvm), plan pp=2,tp=1,ep=2,edp=2, collective timeout 30.0 s"),
                parallel.out());
        assertEquals(1, count(parallel.lines(), "final val loss: "), parallel.out());
    }

    @Test
    void eachRankCheckpointsItsShardAndAResumedRunContinuesBitwise() {
        Path full = dir.resolve("full.jsonl");
        Path resumed = dir.resolve("resumed.jsonl");
        Path checkpoints = dir.resolve("ck");
        String[] plan = {"--world", "4", "--plan", "pp=2,ep=2"};
        Result r = TrainCommandTest.run(with(concat(plan, "--metrics", full.toString())));
        assertEquals(0, r.code(), r.err());
        r = TrainCommandTest.run(with(concat(plan, "--metrics", resumed.toString(), "--checkpoint",
                checkpoints.toString(), "--stop-at", "2")));
        assertEquals(0, r.code(), r.err());
        for (int rank = 0; rank < 4; rank++) {
            assertTrue(Files.isRegularFile(checkpoints.resolve("step-00000002.rank-0000" + rank + "-of-00004.pmoe")),
                    "rank " + rank + "'s checkpoint");
        }
        r = TrainCommandTest.run(with(concat(plan, "--metrics", resumed.toString(), "--checkpoint",
                checkpoints.toString(), "--resume")));
        assertEquals(0, r.code(), r.err());
        assertEquals(1, count(r.lines(), "resumed from "), r.out());
        List<StepMetrics> expected = MetricsWriter.read(full);
        List<StepMetrics> got = MetricsWriter.read(resumed);
        assertEquals(expected.size(), got.size());
        for (int s = 0; s < expected.size(); s++) {
            assertEquals(expected.get(s).loss(), got.get(s).loss(), "step " + (s + 1) + " loss");
            assertEquals(expected.get(s).gradNorm(), got.get(s).gradNorm(), "step " + (s + 1) + " gradient norm");
        }
        assertEquals(expected.getLast().valLoss(), got.getLast().valLoss());
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    @Test
    void planThatDoesNotFitIsAUsageErrorBeforeAnyRankStarts() {
        Result r = TrainCommandTest.run(with("--world", "8", "--plan", "pp=8"));
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("Invalid value for option '--plan': pp=8 does not divide layers = 2"), r.err());
        assertEquals("", r.out(), "no rank started");
        r = TrainCommandTest.run(with("--world", "8", "--plan", "pp=3"));
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("'--plan': pp * tp * ep = 3 does not divide world 8"), r.err());
        r = TrainCommandTest.run(with("--world", "8", "--plan", "ep=8")); // micro-batches of 4 sequences, dp = 8
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("Invalid value for option '--batch': 8 sequences in 2 micro-batches of 4 cannot be"
                + " shared by the 8 data-parallel ranks"), r.err());
    }

    private static long count(List<String> lines, String prefix) {
        return lines.stream().filter(l -> l.startsWith(prefix)).count();
    }
}
