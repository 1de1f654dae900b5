package dev.panamoe.runtime.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

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
        mpirun = MpiRun.mpirun();
        assumeTrue(mpirun != null, "mpirun is not on PATH (install openmpi-bin and libopenmpi-dev): MPI tests skipped");
    }


    @Test
    void everyOperationMatchesTheReferenceOnFourProcesses() throws Exception {
        MpiRun.Job job = mpirun("checks", 120_000);
        assertEquals(0, job.exitCode(), job.output());
        for (int r = 0; r < RANKS; r++) {
            assertTrue(job.output().contains(MpiChecksMain.MARKER + " rank " + r + " of " + RANKS + " checked "), job.output());
        }
    }

    @Test
    void aKilledProcessEndsTheJobWithAnError() throws Exception {
        MpiRun.Job job = mpirun("kill", FAILURE_LIMIT_MS * 2);
        assertNotEquals(0, job.exitCode(), job.output());
        assertTrue(job.elapsedMs() < FAILURE_LIMIT_MS, "ended after " + job.elapsedMs() + " ms\n" + job.output());
        assertTrue(job.output().contains("rank 1") && job.output().contains("signal 9"), job.output());
    }

    @Test
    void aRankThatThrowsEndsTheJobWithItsCauseReportedOnce() throws Exception {
        MpiRun.Job job = mpirun("throw", FAILURE_LIMIT_MS * 2);
        assertNotEquals(0, job.exitCode(), job.output());
        assertTrue(job.elapsedMs() < FAILURE_LIMIT_MS, "ended after " + job.elapsedMs() + " ms\n" + job.output());
        String line = "MPI world of 4 ranks: rank 1 failed: java.lang.IllegalStateException: boom in step 5";
        assertEquals(1, occurrences(job.output(), line), job.output());
        assertEquals(1, occurrences(job.output(), " failed: "), "only the failed rank reports\n" + job.output());
    }

    /** hang: rank 1 sleeps instead of calling; stop: rank 1 is stopped by SIGSTOP. The others name it. */
    @ParameterizedTest
    @ValueSource(strings = {"hang", "stop"})
    void aRankThatStopsArrivingEndsTheJobWithinTheTimeoutNamingIt(String mode) throws Exception {
        MpiRun.Job job = mpirun(mode, FAILURE_LIMIT_MS * 2);
        assertNotEquals(0, job.exitCode(), job.output());
        assertTrue(job.elapsedMs() < FAILURE_LIMIT_MS, "ended after " + job.elapsedMs() + " ms\n" + job.output());
        assertTrue(job.output().contains("allReduce on MPI rank") && job.output().contains("timed out after 3000 ms: "
                + "world ranks [1] did not arrive (world ranks ["), job.output());
    }

    private static MpiRun.Job mpirun(String mode, long limitMs) throws IOException, InterruptedException {
        return MpiRun.run(mpirun, RANKS, MpiChecksMain.class.getName(), List.of(mode), limitMs);
    }

    private static int occurrences(String text, String part) {
        int n = 0;
        for (int at = text.indexOf(part); at >= 0; at = text.indexOf(part, at + 1)) {
            n++;
        }
        return n;
    }
}
