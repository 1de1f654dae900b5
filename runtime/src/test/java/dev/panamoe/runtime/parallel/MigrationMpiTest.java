package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamoe.runtime.comm.MpiRun;
import dev.panamoe.runtime.parallel.MigrationEquivalenceTest.Run;
import java.io.ObjectInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Exact live migration over Open MPI: {@code mpirun -np 4} processes train with forced random
 * placements (permutations, and replications with replica slots) and without; the losses and
 * the final parameters gathered per logical expert agree within 1e-5 relative. Skipped, with the
 * reason, where mpirun is not installed.
 */
class MigrationMpiTest {
    private static final long LIMIT_MS = 240_000;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, {1} replica slots per device")
    @CsvSource("'dp=2,ep=2',1") // permutations and replications, across DATA and EXPERT groups; ~20 s on 2 cores
    void placementChangesOverMpiChangeNothing(String plan, int replicaSlots) throws Exception {
        String mpirun = MpiRun.mpirun();
        assumeTrue(mpirun != null, "mpirun is not on PATH (install openmpi-bin and libopenmpi-dev): MPI run skipped");
        long start = System.nanoTime();
        MpiRun.Job job = MpiRun.run(mpirun, 4, MigrationMpiMain.class.getName(),
                List.of(plan, Integer.toString(replicaSlots), dir.toString()), LIMIT_MS);
        assertEquals(0, job.exitCode(), job.output());
        List<Run> still = new ArrayList<>();
        List<Run> moved = new ArrayList<>();
        for (int r = 0; r < 4; r++) {
            still.add(read(dir.resolve("rank-" + r + "-still.bin")));
            moved.add(read(dir.resolve("rank-" + r + "-moved.bin")));
        }
        Run movedRun = MigrationEquivalenceTest.merge(moved);
        assertEquals(3 * ParallelTraining.model().moeLayerCount(), movedRun.changes(), "layer placement changes");
        double worst = MigrationEquivalenceTest.compare(MigrationEquivalenceTest.merge(still), movedRun);
        System.out.printf(Locale.ROOT, "mpi migration %-10s replicas %d: max relative difference %.2e in %.1f s%n",
                plan, replicaSlots, worst, (System.nanoTime() - start) / 1e9);
    }

    private static Run read(Path file) throws Exception {
        try (ObjectInputStream in = new ObjectInputStream(Files.newInputStream(file))) {
            return (Run) in.readObject();
        }
    }
}
