package dev.panamoe.runtime.comm;

import java.time.Duration;
import java.util.List;
import java.util.function.Function;

/**
 * Starts the world this process belongs to: under mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE and
 * OMPI_COMM_WORLD_RANK) one rank per process over MPI, else ranks as threads of this JVM.
 */
public final class Worlds {
    private Worlds() {}

    /** True when this process is one rank of an mpirun job. */
    public static boolean underMpirun() {
        return MpiCommunicator.underMpirun();
    }

    /** This process's rank under mpirun, 0 otherwise (an in-JVM world's ranks share rank 0's process). */
    public static int processRank() {
        String rank = System.getenv("OMPI_COMM_WORLD_RANK");
        return rank != null ? Integer.parseInt(rank.trim()) : 0;
    }

    /** The size of the world {@link #run} starts: mpirun's process count, else inJvmRanks. */
    public static int worldSize(int inJvmRanks) {
        String mpiSize = System.getenv("OMPI_COMM_WORLD_SIZE");
        return mpiSize != null ? Integer.parseInt(mpiSize.trim()) : inJvmRanks;
    }

    /**
     * Runs perRank on every rank of the world and returns the results of the ranks that live in
     * this process: all of them, in rank order, for an in-JVM world; this process's one result
     * under mpirun.
     *
     * <p>Failure: in-JVM, one CommunicatorException naming the first failed rank and its cause
     * (see {@link InJvmWorld#run}). Under mpirun, the failing rank prints the cause once and
     * aborts the MPI job (MPI_Abort), so every process ends with a non-zero exit code; this
     * method then never returns.
     *
     * @param inJvmRanks ranks of the in-JVM world; under mpirun it must equal the process count,
     *     or be 0 for "whatever mpirun started"
     */
    public static <T> List<T> run(int inJvmRanks, Duration timeout, Function<Communicator, T> perRank) {
        if (!underMpirun()) {
            return InJvmWorld.run(inJvmRanks, timeout, perRank);
        }
        int processes = worldSize(inJvmRanks);
        if (inJvmRanks != 0 && inJvmRanks != processes) {
            throw new IllegalArgumentException("ranks: " + inJvmRanks + " requested but mpirun started " + processes
                    + " processes (pass 0, or the same number to mpirun -np)");
        }
        MpiCommunicator world = MpiCommunicator.world(timeout);
        T result;
        try {
            result = perRank.apply(world);
            world.close();
        } catch (Throwable t) {
            world.abort(t);
            throw new AssertionError("MPI_Abort returned", t);
        }
        return java.util.Collections.singletonList(result);
    }
}
