package dev.panamoe.jmh;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
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
 * One dense GEMM c = a * b, f32 or bf16 (bf16 operands and output, f32 accumulation), with the
 * CPU kernels at a chosen ISA level (a level the CPU lacks fails its setup, naming the missing
 * feature): 4096^3, and the work of the MoE layers' expert projections, [tokens * k, hidden] x
 * [hidden, ffn]. GFLOP/s = 2 * m * n * k / time (ResultsTable).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class DenseGemmBenchmark {

    /** "m x k x n". */
    @Param({"4096x4096x4096", "8192x1024x3584", "32768x1792x512", "2048x2048x2048"})
    public String size;

    @Param({"f32", "bf16"})
    public String dtype;

    @Param({"avx2", "avx512", "avx512_bf16"})
    public String isa;

    private TensorScope scope;
    private Tensor a;
    private Tensor b;
    private Tensor c;

    @Setup(Level.Trial)
    public void setup() {
        String[] mkn = size.split("x");
        int m = Integer.parseInt(mkn[0]), k = Integer.parseInt(mkn[1]), n = Integer.parseInt(mkn[2]);
        DType type = BenchmarkData.floatType(dtype);
        CpuLevel.named(isa).selectForKernels();
        scope = TensorScope.shared(CpuBackend.get());
        a = scope.allocate("a", type, m, k);
        b = scope.allocate("b", type, k, n);
        c = scope.allocate("c", type, m, n);
        BenchmarkData.fillUniform(a, 1, 1f);
        BenchmarkData.fillUniform(b, 2, 1f);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        scope.close();
    }

    @Benchmark
    public Tensor gemm() {
        CpuBackend.get().gemm(false, false, 1f, a, b, 0f, c);
        return c;
    }
}
