package dev.panamoe.jmh;

import dev.panamoe.bindings.panamoe_h;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/** Cost of one FFM downcall into the kernel library: a no-op ABI function, plain and critical. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class FfmOverheadBenchmark {

    private panamoe_h lib;
    private MethodHandle plain;
    private MethodHandle critical;

    @Setup
    public void setup() {
        lib = panamoe_h.cpu();
        plain = lib.pmoe_noop$handle();
        critical = lib.pmoe_noop$criticalHandle();
    }

    @Benchmark
    public int noopWrapper() {
        return lib.pmoe_noop();
    }

    @Benchmark
    public int noopPlainHandle() throws Throwable {
        return (int) plain.invokeExact();
    }

    @Benchmark
    public int noopCriticalHandle() throws Throwable {
        return (int) critical.invokeExact();
    }
}
