package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.comm.MpiRun;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code mpirun -np 4 ... train --plan P}: one rank per process over Open MPI trains like one rank
 * (losses and validation loss within 1e-5), and only rank 0 writes the metrics and the summary.
 * Skipped, with the reason, where mpirun is not installed.
 */
class ParallelMpiTrainTest {
    private static final List<String> RUN = List.of("train", "--steps", "2", "--batch", "8", "--micro-batches", "2",
            "--seq", "16", "--eval-every", "2", "--eval-batches", "2", "--threads", "1");
    private static final long LIMIT_MS = 240_000;
    private static String mpirun;
    private static List<StepMetrics> single;

    @TempDir
    static Path dir;

    @BeforeAll
    static void trainOnOneRank() {
        mpirun = MpiRun.mpirun();
        assumeTrue(mpirun != null, "mpirun is not on PATH (install openmpi-bin and libopenmpi-dev): MPI runs skipped");
        Path metrics = dir.resolve("one.jsonl");
        List<String> args = new ArrayList<>(RUN);
        args.addAll(List.of("--metrics", metrics.toString()));
        Result r = TrainCommandTest.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.err());
        single = MetricsWriter.read(metrics);
    }

    @ParameterizedTest
    @ValueSource(strings = {"pp=2,ep=2", "tp=2,ep=2"})
    void fourProcessesTrainLikeOneRank(String plan) throws Exception {
        Path metrics = dir.resolve("mpi-" + plan.replace(',', '_').replace('=', '-') + ".jsonl");
        List<String> args = new ArrayList<>(RUN);
        args.addAll(List.of("--plan", plan, "--metrics", metrics.toString()));
        MpiRun.Job job = MpiRun.run(mpirun, 4, Main.class.getName(), args, LIMIT_MS);
        String output = job.output();
        assertEquals(0, job.exitCode(), output);
        assertEquals(1, output.lines().filter(l -> l.startsWith("parallel: 4 ranks (mpi)")).count(), output);
        assertEquals(1, output.lines().filter(l -> l.startsWith("final val loss: ")).count(), output);

        List<StepMetrics> got = MetricsWriter.read(metrics);
        assertEquals(single.size(), got.size(), "one metrics line per step\n" + output);
        for (int s = 0; s < got.size(); s++) {
            assertClose("step " + (s + 1) + " loss", single.get(s).loss(), got.get(s).loss());
        }
        assertClose("validation loss", single.getLast().valLoss(), got.getLast().valLoss());
    }

    private static void assertClose(String what, double expected, double actual) {
        assertTrue(Math.abs(actual - expected) <= 1e-5 * Math.abs(expected), what + ": " + actual + " vs " + expected);
    }
}
