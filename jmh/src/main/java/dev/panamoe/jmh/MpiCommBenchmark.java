package dev.panamoe.jmh;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.panamoe.bindings.mpi_h;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.MpiCommunicator;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;

/**
 * The MPI communicator's all-reduce and all-to-allv under mpirun, timed exactly like the C
 * reference jmh/src/main/c/mpi_comm_bench.c (MPI_Wtime around a loop after a barrier, median of
 * 5 repetitions after at least 3 s of warm-up, reported by rank 0): JMH does not fit a job of several
 * processes, so this is a plain main. Two Java variants per case: "ffm-backend" is
 * MpiCommunicator (nonblocking call + MPI_Test polling, counts exchange for all-to-allv), and
 * "ffm-blocking" the blocking MPI_Allreduce / MPI_Alltoallv called through mpi_h, the very call
 * the C program makes. Run by jmh/mpi-bench.sh, which also runs the C program and prints the ratios.
 */
public final class MpiCommBenchmark {
    private static final int REPS = 5;
    private static final long[] FLOATS = {1024, 65536, 1048576};

    private MpiCommBenchmark() {}

    public static void main(String[] args) {
        MpiCommunicator world = MpiCommunicator.world(Duration.ofMinutes(5));
        try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
            for (String op : new String[] {"allReduce", "allToAllV"}) {
                for (long floats : FLOATS) {
                    Case c = new Case(world, scope, op, (int) floats);
                    report(world, "ffm-backend", op, floats, c.time(c::backend));
                    report(world, "ffm-blocking", op, floats, c.time(c::blocking));
                }
            }
        }
        world.close();
    }

    /** One collective on one size: the buffers, and the two ways to call it. */
    private static final class Case {
        final Communicator comm;
        final String op;
        final int floats;
        final Tensor send;
        final Tensor recv;
        final int[] counts;
        final MemorySegment nativeCounts;
        final MemorySegment nativeDispls;

        Case(Communicator comm, TensorScope scope, String op, int floats) {
            this.comm = comm;
            this.op = op;
            this.floats = floats;
            send = scope.allocate("send", DType.F32, floats);
            recv = scope.allocate("recv", DType.F32, floats);
            send.fill(1f / (comm.rank() + 1));
            counts = new int[comm.size()];
            Arrays.fill(counts, floats / comm.size());
            int[] displs = new int[comm.size()];
            Arrays.setAll(displs, p -> p * counts[p]);
            nativeCounts = Arena.global().allocateFrom(JAVA_INT, counts);
            nativeDispls = Arena.global().allocateFrom(JAVA_INT, displs);
        }

        private static void loop(Runnable call, int iters) {
            for (int i = 0; i < iters; i++) {
                call.run();
            }
        }

        void backend() {
            if (op.equals("allReduce")) {
                comm.allReduce(send);
            } else {
                comm.allToAllV(send, counts, recv, counts);
            }
        }

        void blocking() {
            int rc = op.equals("allReduce")
                    ? mpi_h.MPI_Allreduce(mpi_h.MPI_IN_PLACE(), send.data(), floats, mpi_h.MPI_FLOAT(), mpi_h.MPI_SUM(),
                            mpi_h.MPI_COMM_WORLD())
                    : mpi_h.MPI_Alltoallv(send.data(), nativeCounts, nativeDispls, mpi_h.MPI_FLOAT(), recv.data(),
                            nativeCounts, nativeDispls, mpi_h.MPI_FLOAT(), mpi_h.MPI_COMM_WORLD());
            if (rc != mpi_h.MPI_SUCCESS) {
                throw new IllegalStateException(op + ": MPI error " + rc);
            }
        }

        /** Median seconds per call over REPS timed loops, after at least 3 s of warm-up (the JIT's). */
        double time(Runnable call) {
            int iters = (int) Math.max(3, Math.min(500, (32L << 20) / (4L * floats)));
            try (TensorScope host = TensorScope.confined(CpuBackend.get())) {
                Tensor more = host.allocate("more", DType.I32, 1);
                double warmed = 0;
                do {
                    double start = mpi_h.MPI_Wtime();
                    loop(call, iters);
                    warmed += mpi_h.MPI_Wtime() - start;
                    more.setInt(0, warmed < 3.0 ? 1 : 0);
                    comm.broadcast(more, 0); // rank 0 decides, so every rank loops as often
                } while (more.getInt(0) == 1);
            }
            double[] times = new double[REPS];
            for (int rep = 0; rep < REPS; rep++) {
                mpi_h.MPI_Barrier(mpi_h.MPI_COMM_WORLD());
                double start = mpi_h.MPI_Wtime();
                loop(call, iters);
                times[rep] = (mpi_h.MPI_Wtime() - start) / iters;
            }
            Arrays.sort(times);
            return times[REPS / 2];
        }
    }

    private static void report(Communicator comm, String impl, String op, long floats, double seconds) {
        if (comm.rank() == 0) {
            long bytes = 4 * floats;
            System.out.println(String.format(Locale.ROOT, "%s %s %d %.2f %.3f", impl, op, bytes, seconds * 1e6, bytes / seconds / 1e9));
        }
    }
}
