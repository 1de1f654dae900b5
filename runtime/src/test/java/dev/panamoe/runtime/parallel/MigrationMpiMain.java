package dev.panamoe.runtime.parallel;

import dev.panamoe.runtime.comm.Worlds;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * What {@link MigrationMpiTest} runs under mpirun, one process per rank: args plan, replica slots
 * per device, output directory. Trains the plan without placement changes, then with forced
 * random placements ({@link MigrationEquivalenceTest.ForcedPlacements}), and writes this rank's
 * two {@link MigrationEquivalenceTest.Run}s to DIR/rank-R-still.bin and DIR/rank-R-moved.bin.
 */
public final class MigrationMpiMain {

    private MigrationMpiMain() {
    }

    public static void main(String[] args) {
        String plan = args[0];
        int replicaSlots = Integer.parseInt(args[1]);
        Path out = Path.of(args[2]);
        GptMoeConfig model = ParallelTraining.model();
        Worlds.run(0, Duration.ofSeconds(120), comm -> {
            if (!comm.backendName().equals("mpi")) {
                throw new IllegalStateException("expected the MPI backend, got " + comm.backendName());
            }
            RankLayout layout = new RankLayout(ParallelPlan.parse(plan, comm.size()));
            var still = MigrationEquivalenceTest.trainRank(comm, layout, model, null);
            var moved = MigrationEquivalenceTest.trainRank(comm, layout, model,
                    new MigrationEquivalenceTest.ForcedPlacements(model.moeLayerCount(), model.experts(),
                            layout.plan().ep(), replicaSlots, 2, 17));
            write(out.resolve("rank-" + comm.rank() + "-still.bin"), still);
            write(out.resolve("rank-" + comm.rank() + "-moved.bin"), moved);
            return null;
        });
    }

    private static void write(Path file, Object value) {
        try (ObjectOutputStream o = new ObjectOutputStream(Files.newOutputStream(file))) {
            o.writeObject(value);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file, e);
        }
    }
}
