package dev.panamoe.jmh;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The machine's arithmetic limit at each ISA level, on 1 and 2 threads: independent chains of
 * 256-bit FMA ({@code avx2}), 512-bit FMA ({@code avx512}) or vdpbf16ps ({@code avx512_bf16}),
 * native code called through FFM (see {@link CpuLevel}). One JMH operation is one MFLOP, so
 * the score in ops/ms is the rate in GFLOP/s (summed over the threads, as JMH sums throughput);
 * a level the CPU lacks fails its setup with the missing feature's name.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class PeakRateBenchmark {

    /**
     * MFLOP per call: about 10 ms of work on one core, so a call's overhead is noise. A multiple
     * of every level's FLOPs per loop iteration (192, 768, 1536) in MFLOP, so each call does exactly this.
     */
    static final int MFLOP_PER_CALL = 2400;

    @Param({"avx2", "avx512", "avx512_bf16"})
    public String isa;

    private CpuLevel level;
    private long iterations;

    @Setup(Level.Trial)
    public void setup() {
        level = CpuLevel.named(isa);
        level.requireSupported();
        iterations = iterationsPerCall(level.flopsPerIteration());
    }

    /** Loop iterations that do exactly {@link #MFLOP_PER_CALL} MFLOP. */
    static long iterationsPerCall(double flopsPerIteration) {
        double iterations = MFLOP_PER_CALL * 1e6 / flopsPerIteration;
        if (iterations != Math.rint(iterations)) {
            throw new IllegalStateException("MFLOP_PER_CALL " + MFLOP_PER_CALL
                    + " is not a whole number of iterations of " + flopsPerIteration + " FLOPs");
        }
        return (long) iterations;
    }

    @Benchmark
    @Threads(1)
    @OperationsPerInvocation(MFLOP_PER_CALL)
    public float oneThread() {
        return level.runChains(iterations);
    }

    @Benchmark
    @Threads(2)
    @OperationsPerInvocation(MFLOP_PER_CALL)
    public float twoThreads() {
        return level.runChains(iterations);
    }
}
