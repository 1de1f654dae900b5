package dev.panamoe.runtime.comm;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.time.Duration;

/**
 * What {@link MpiCommunicatorTest} runs under mpirun, one process per rank:
 * {@code checks} runs {@link CollectiveChecks} and prints {@value #MARKER} on each rank;
 * {@code kill}, {@code throw}, {@code hang} and {@code stop} make rank 1 die (kill -9 of its own
 * process), throw, stop arriving, or stop (SIGSTOP of its own process) in the middle of a loop of
 * all-reduces.
 */
public final class MpiChecksMain {
    static final String MARKER = "PANAMOE-MPI-CHECKS-OK";

    public static void main(String[] args) {
        String mode = args.length > 0 ? args[0] : "checks";
        Duration timeout = Duration.ofSeconds(mode.equals("checks") ? 60 : 3);
        Worlds.run(0, timeout, comm -> {
            if (!comm.backendName().equals("mpi")) {
                throw new IllegalStateException("expected the MPI backend, got " + comm.backendName());
            }
            if (mode.equals("checks")) {
                long checked = new CollectiveChecks(comm, 7, false, false).runAll();
                System.out.println(MARKER + " rank " + comm.rank() + " of " + comm.size() + " checked " + checked);
            } else {
                failingLoop(comm, mode);
            }
            return null;
        });
    }

    private static void failingLoop(Communicator comm, String mode) {
        try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
            Tensor grad = scope.allocate("grad", DType.F32, 1024);
            for (int step = 0; step < 20; step++) {
                if (comm.rank() == 1 && step == 5) {
                    switch (mode) {
                        case "kill" -> signalMyself("KILL");
                        case "stop" -> signalMyself("STOP");
                        case "throw" -> throw new IllegalStateException("boom in step " + step);
                        case "hang" -> sleep(Duration.ofMinutes(10));
                        default -> throw new IllegalArgumentException("mode: unknown " + mode);
                    }
                }
                comm.allReduce(grad);
            }
        }
    }

    private static void signalMyself(String signal) {
        try {
            new ProcessBuilder("kill", "-" + signal, Long.toString(ProcessHandle.current().pid())).start().waitFor();
            sleep(Duration.ofSeconds(10));
        } catch (Exception e) {
            throw new IllegalStateException("kill -" + signal + " failed", e);
        }
        Runtime.getRuntime().halt(137);
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
