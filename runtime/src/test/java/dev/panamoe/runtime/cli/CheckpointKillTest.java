package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamoe.runtime.comm.MpiRun;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.Checkpoint;
import dev.panamoe.runtime.train.CheckpointException;
import dev.panamoe.runtime.train.CheckpointStore;
import dev.panamoe.runtime.train.DirectoryLock;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code kill -9} at random moments of a multi-rank run that checkpoints every step, in-JVM
 * ({@code --world 4}) and under {@code mpirun -np 4} (a random rank's process is killed): after
 * every kill the directory holds one committed step whose four rank files are all whole and
 * listed by its manifest, the next {@code --resume} (with nothing but the directory) starts from
 * exactly that step, and the run ends bit for bit as the uninterrupted one. While a run holds the
 * directory, a second one is refused naming the holder's PID; a rank file of another step placed
 * among a step's files is refused at once, naming it. The delays come from fixed seeds; the
 * number of kills is bounded (3 in-JVM, 2 under mpirun, whose jobs start four JVMs each).
 */
class CheckpointKillTest {
    private static final int RANKS = 4;
    private static final int STEPS = 30;
    private static final long RUN_LIMIT_MS = 180_000;
    private static final Pattern RESUMED = Pattern.compile("resumed from .* at step (\\d+)");

    @TempDir
    Path dir;

    private static List<String> args(Path checkpoints, boolean mpi) {
        List<String> args = new ArrayList<>(List.of("train", "--layers", "2", "--hidden", "16", "--heads", "2",
                "--experts", "4", "--seq", "16", "--steps", Integer.toString(STEPS), "--batch", "8", "--micro-batches",
                "2", "--warmup", "2", "--eval-every", "10", "--eval-batches", "1", "--threads", "1", "--plan",
                "dp=2,ep=2", "--checkpoint", checkpoints.toString(), "--checkpoint-every", "1", "--metrics",
                checkpoints.resolve("metrics.jsonl").toString()));
        if (!mpi) {
            args.addAll(List.of("--world", Integer.toString(RANKS)));
        }
        return args;
    }

    /** How one job is started: a JVM of RANKS threads, or mpirun with RANKS processes. */
    private interface Launcher {
        ProcessBuilder builder(List<String> args);

        /** Kills the job with SIGKILL: the JVM, or one rank's process chosen by random. */
        void kill(Process job, Random random);
    }

    private static final Launcher IN_JVM = new Launcher() {
        @Override
        public ProcessBuilder builder(List<String> args) {
            return new ProcessBuilder(MpiRun.java(Main.class.getName(), args));
        }

        @Override
        public void kill(Process job, Random random) {
            job.destroyForcibly(); // SIGKILL
        }
    };

    private static Launcher mpi(String mpirun) {
        return new Launcher() {
            @Override
            public ProcessBuilder builder(List<String> args) {
                return MpiRun.mpirunJava(mpirun, RANKS, Main.class.getName(), args);
            }

            @Override
            public void kill(Process job, Random random) {
                List<ProcessHandle> ranks = javaProcesses(job);
                if (!ranks.isEmpty()) {
                    ranks.get(random.nextInt(ranks.size())).destroyForcibly();
                }
            }
        };
    }

    private static List<ProcessHandle> javaProcesses(Process job) {
        return job.descendants().filter(h -> h.info().command().map(c -> c.endsWith("java")).orElse(false)).toList();
    }

    private record Ended(int exitCode, String output) {
    }

    private static Process start(Launcher launcher, List<String> args, Path log) throws IOException {
        return launcher.builder(args).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /** Waits for job and every process it started; kills what is left after the limit. */
    private static Ended finish(Process job, Path log, long limitMs) throws IOException, InterruptedException {
        List<ProcessHandle> all = new ArrayList<>(job.descendants().toList());
        boolean ended = job.waitFor(limitMs, TimeUnit.MILLISECONDS);
        all.addAll(job.descendants().toList());
        for (ProcessHandle h : all) {
            h.destroyForcibly();
            h.onExit().join();
        }
        job.destroyForcibly().waitFor();
        String output = Files.readString(log, StandardCharsets.UTF_8);
        assertTrue(ended, "still running after " + limitMs + " ms:\n" + output);
        return new Ended(job.exitValue(), output);
    }

    /** The uninterrupted run, then runs killed at random moments and resumed, then the last resume to the end. */
    private void killAndResume(Launcher launcher, int kills, long seed) throws Exception {
        Path reference = dir.resolve("reference");
        Path log = dir.resolve("log.txt");
        Ended whole = finish(start(launcher, args(reference, launcher != IN_JVM), log), log, RUN_LIMIT_MS);
        assertEquals(0, whole.exitCode(), whole.output());

        Path ck = dir.resolve("killed");
        Random random = new Random(seed);
        List<String> resume = List.of("train", "--checkpoint", ck.toString(), "--resume");
        int committed = 0; // the step the next run starts from
        int killed = 0;
        boolean lockChecked = false;
        Path stale = dir.resolve("stale.pmoe"); // a whole rank file of an earlier step
        while (true) {
            Process job = start(launcher, killed == 0 && committed == 0 ? args(ck, launcher != IN_JVM) : resume, log);
            boolean kill = killed < kills;
            if (kill) {
                long deadline = System.nanoTime() + RUN_LIMIT_MS * 1_000_000;
                while (job.isAlive() && newestStep(ck) <= committed && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                if (!lockChecked && job.isAlive()) {
                    assertLockedBy(ck, job, launcher);
                    lockChecked = true;
                }
                Thread.sleep(random.nextInt(250));
                kill = job.isAlive();
                if (kill) {
                    launcher.kill(job, random);
                    killed++;
                }
            }
            Ended run = finish(job, log, RUN_LIMIT_MS);
            if (committed > 0) {
                Matcher m = RESUMED.matcher(run.output());
                assertTrue(m.find(), run.output());
                assertEquals(committed, Integer.parseInt(m.group(1)), "resumed from the newest committed step\n"
                        + run.output());
            }
            if (!kill) {
                assertEquals(0, run.exitCode(), run.output());
                break;
            }
            committed = assertOneConsistentStep(ck);
            if (!Files.exists(stale)) {
                Files.copy(new CheckpointStore(ck, 2, RANKS, null).rankFile(committed, 2), stale);
            }
        }
        assertTrue(killed > 0 && lockChecked, "the runs were killed " + killed + " times");
        assertSameRun(reference, ck);
        assertStaleRankFileRefused(launcher, stale, ck, log);
    }

    private static int newestStep(Path ck) {
        try {
            CheckpointStore.Manifest m = CheckpointStore.newest(ck);
            return m == null ? 0 : m.step();
        } catch (CheckpointException | java.io.UncheckedIOException e) {
            return 0; // listed while being renamed into place: look again
        }
    }

    /** The newest committed step's four rank files are whole, of that step and the ones its manifest lists. */
    private static int assertOneConsistentStep(Path ck) {
        CheckpointStore.Manifest m = CheckpointStore.newest(ck);
        assertTrue(m != null, "a committed step survives the kill");
        for (int r = 0; r < RANKS; r++) {
            assertEquals(m.step(), new CheckpointStore(ck, r, RANKS, null).load().step(), "rank " + r);
        }
        return m.step();
    }

    /** A second run is refused while the job holds the directory, naming the lock and the holder. */
    private static void assertLockedBy(Path ck, Process job, Launcher launcher) {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> DirectoryLock.acquire(ck));
        List<Long> holders = launcher == IN_JVM ? List.of(job.pid())
                : javaProcesses(job).stream().map(ProcessHandle::pid).toList();
        assertTrue(holders.stream().anyMatch(pid -> e.getMessage().contains(ck.resolve(DirectoryLock.FILE_NAME)
                + " is locked by process " + pid)), e.getMessage() + " (holders " + holders + ")");
    }

    private static void assertSameRun(Path reference, Path ck) throws IOException {
        List<StepMetrics> expected = MetricsWriter.read(reference.resolve("metrics.jsonl"));
        List<StepMetrics> got = MetricsWriter.read(ck.resolve("metrics.jsonl"));
        assertEquals(STEPS, expected.size());
        assertEquals(expected.size(), got.size());
        for (int s = 0; s < STEPS; s++) {
            assertEquals(expected.get(s).step(), got.get(s).step());
            assertEquals(Double.doubleToRawLongBits(expected.get(s).loss()), Double.doubleToRawLongBits(got.get(s).loss()),
                    "step " + (s + 1) + " loss");
            assertEquals(Double.doubleToRawLongBits(expected.get(s).gradNorm()),
                    Double.doubleToRawLongBits(got.get(s).gradNorm()), "step " + (s + 1) + " gradient norm");
            assertEquals(Double.doubleToRawLongBits(expected.get(s).valLoss()),
                    Double.doubleToRawLongBits(got.get(s).valLoss()), "step " + (s + 1) + " validation loss");
        }
        for (int r = 0; r < RANKS; r++) {
            Path file = new CheckpointStore(ck, r, RANKS, null).rankFile(STEPS, r);
            assertArrayEquals(PlacementTrainCommandTest.tensorBytes(reference.resolve(file.getFileName())),
                    PlacementTrainCommandTest.tensorBytes(file), "rank " + r);
        }
    }

    /**
     * Rank 2's file of the last step replaced by its whole file of an earlier step: the resume fails
     * at once naming it — not after a collective timeout.
     */
    private static void assertStaleRankFileRefused(Launcher launcher, Path stale, Path ck, Path log) throws Exception {
        Path target = new CheckpointStore(ck, 2, RANKS, null).rankFile(STEPS, 2);
        Files.copy(stale, target, StandardCopyOption.REPLACE_EXISTING);
        int staleStep = Checkpoint.read(stale).step();
        long start = System.nanoTime();
        Ended refused = finish(start(launcher, List.of("train", "--checkpoint", ck.toString(), "--resume"), log), log,
                RUN_LIMIT_MS);
        assertTrue(refused.exitCode() != 0, refused.output());
        assertTrue(refused.output().contains(target + " holds step " + staleStep + ", but its manifest"),
                refused.output());
        assertTrue(System.nanoTime() - start < 60_000_000_000L, "refused without waiting for a collective timeout");
    }

    @Test
    void inJvmWorldKilledAtRandomResumesFromOneConsistentStepBitForBit() throws Exception {
        killAndResume(IN_JVM, 3, 16);
    }

    @Test
    void mpirunJobKilledAtRandomResumesFromOneConsistentStepBitForBit() throws Exception {
        String mpirun = MpiRun.mpirun();
        assumeTrue(mpirun != null, "mpirun is not on PATH (install openmpi-bin and libopenmpi-dev): MPI runs skipped");
        killAndResume(mpi(mpirun), 2, 61);
    }
}
