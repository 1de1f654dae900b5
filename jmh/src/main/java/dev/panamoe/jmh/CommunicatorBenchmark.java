package dev.panamoe.jmh;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.CommunicatorException;
import dev.panamoe.runtime.comm.InJvmWorld;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The in-JVM communicator: all-reduce and all-to-allv of {@code floats} f32 elements per rank on
 * {@code ranks} threads. The benchmark thread is rank 0; the other ranks are threads that repeat
 * the same collective until the trial ends (each collective waits for every rank, so they stay in
 * step), and are then stopped by aborting the world. All-to-allv sends floats/ranks elements to
 * every peer. Bandwidth (jmh/README): bytes per rank (4 x floats) / time.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CommunicatorBenchmark {

    @Param({"2", "8"})
    public int ranks;

    @Param({"262144", "4194304"})
    public int floats;

    @Param({"allReduce", "allToAllV"})
    public String op;

    private List<Communicator> comms;
    private final List<Thread> peers = new ArrayList<>();
    private Step rank0;

    /** One rank's buffers and its collective. */
    private final class Step implements AutoCloseable {
        final Communicator comm;
        final TensorScope scope = TensorScope.shared(CpuBackend.get());
        final Tensor send;
        final Tensor recv;
        final int[] counts;

        Step(Communicator comm) {
            this.comm = comm;
            send = scope.allocate("send", DType.F32, floats);
            recv = scope.allocate("recv", DType.F32, floats);
            send.fill(1f / (comm.rank() + 1));
            counts = new int[ranks];
            Arrays.fill(counts, floats / ranks);
        }

        void run() {
            if (op.equals("allReduce")) {
                comm.allReduce(send);
            } else {
                comm.allToAllV(send, counts, recv, counts);
            }
        }

        @Override
        public void close() {
            scope.close();
        }
    }

    @Setup(Level.Trial)
    public void setup() {
        comms = InJvmWorld.create(ranks, Duration.ofMinutes(5));
        rank0 = new Step(comms.getFirst());
        for (int r = 1; r < ranks; r++) {
            Step step = new Step(comms.get(r));
            Thread t = Thread.ofPlatform().daemon().name("bench-rank-" + r).start(() -> {
                try (step) {
                    while (true) {
                        step.run();
                    }
                } catch (CommunicatorException stopped) {
                    // the trial is over: tearDown aborted the world
                }
            });
            peers.add(t);
        }
    }

    @Benchmark
    public void collective() {
        rank0.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        comms.getFirst().abort(new IllegalStateException("benchmark trial finished"));
        for (Thread t : peers) {
            t.join();
        }
        rank0.close();
    }
}
