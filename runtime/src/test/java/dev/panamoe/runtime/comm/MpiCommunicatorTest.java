package dev.panamoe.runtime.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The MPI backend under a real {@code mpirun -np 4} (4 JVMs; oversubscribed on 2 cores): every
 * operation against the plain-Java reference, and the failure behaviour (a process killed, a
 * rank that throws, a rank that stops arriving) ends the job with an error, not a hang.
 */
class MpiCommunicatorTest {
    private static final int RANKS = 4;
    /** The job's own collective timeout is 3 s in the failure modes; this bounds JVM start-up too. */
    private static final long FAILURE_LIMIT_MS = 25_000;

    private static String mpirun;

    @BeforeAll
    static void findMpirun() {
        mpirun = onPath("mpirun");
        assumeTrue(mpirun != null, "mpirun is not on PATH (install openmpi-bin and libopenmpi-dev): MPI tests skipped");
    }

    record Job(int exitCode, long elapsedMs, String output) {}

    @Test
    void everyOperationMatchesTheReferenceOnFourProcesses() throws Exception {
        Job job = mpirun("checks", 120_000);
        assertEquals(0, job.exitCode(), job.output());
        for (int r = 0; r < RANKS; r++) {
            assertTrue(job.output().contains(MpiChecksMain.MARKER + " rank " + r + " of " + RANKS + " checked "), job.output());
        }
    }

    @Test
    void aKilledProcessEndsTheJobWithAnError() throws Exception {
        Job job = mpirun("kill", FAILURE_LIMIT_MS * 2);
        assertNotEquals(0, job.exitCode(), job.output());
        assertTrue(job.elapsedMs() < FAILURE_LIMIT_MS, "ended after " + job.elapsedMs() + " ms\n" + job.output());
        assertTrue(job.output().contains("rank 1") && job.output().contains("signal 9"), job.output());
    }

    @Test
    void aRankThatThrowsEndsTheJobWithItsCauseReportedOnce() throws Exception {
        Job job = mpirun("throw", FAILURE_LIMIT_MS * 2);
        assertNotEquals(0, job.exitCode(), job.output());
        assertTrue(job.elapsedMs() < FAILURE_LIMIT_MS, "ended after " + job.elapsedMs() + " ms\n" + job.output());
        String line = "MPI world of 4 ranks: rank 1 failed: java.lang.IllegalStateException: boom in step 5";
        assertEquals(1, occurrences(job.output(), line), job.output());
        assertEquals(1, occurrences(job.output(), " failed: "), "only the failed rank reports\n" + job.output());
    }

    @Test
    void aRankThatStopsArrivingEndsTheJobWithinTheTimeout() throws Exception {
        Job job = mpirun("hang", FAILURE_LIMIT_MS * 2);
        assertNotEquals(0, job.exitCode(), job.output());
        assertTrue(job.elapsedMs() < FAILURE_LIMIT_MS, "ended after " + job.elapsedMs() + " ms\n" + job.output());
        assertTrue(job.output().contains("allReduce on MPI rank") && job.output().contains("timed out after 3000 ms"), job.output());
    }

    private static Job mpirun(String mode, long limitMs) throws IOException, InterruptedException {
        String java = ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> command = new ArrayList<>(List.of(mpirun, "--allow-run-as-root", "--oversubscribe", "-np", Integer.toString(RANKS),
                java, "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path")));
        String nativeDir = System.getProperty("panamoe.native.dir");
        if (nativeDir != null) {
            command.add("-Dpanamoe.native.dir=" + nativeDir);
        }
        command.addAll(List.of(MpiChecksMain.class.getName(), mode));
        Path log = Files.createTempFile("panamoe-mpirun-", ".log");
        long start = System.nanoTime();
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean ended = p.waitFor(limitMs, TimeUnit.MILLISECONDS);
        if (!ended) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor();
        }
        long elapsed = (System.nanoTime() - start) / 1_000_000;
        String output = Files.readString(log, StandardCharsets.UTF_8);
        Files.delete(log);
        assertTrue(ended, "mpirun " + mode + " still running after " + limitMs + " ms:\n" + output);
        return new Job(p.exitValue(), elapsed, output);
    }

    private static int occurrences(String text, String part) {
        int n = 0;
        for (int at = text.indexOf(part); at >= 0; at = text.indexOf(part, at + 1)) {
            n++;
        }
        return n;
    }

    private static String onPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path candidate = Path.of(dir, program);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        return null;
    }
}
