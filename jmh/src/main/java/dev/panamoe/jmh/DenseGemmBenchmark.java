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
 *
 * <p>{@code form} picks how the model calls it (BlockOps): {@code nn} c[m, n] = a[m, k] b[k, n]
 * (forward), {@code nt} c[m, n] = a[m, k] b[n, k]^T (input gradient) or {@code tn}
 * c[m, n] += a[k, m]^T b[k, n] (weight gradient: beta 1, c f32 also when a and b are bf16). The
 * dense layers of one training step of the {@code small} preset (2048 token rows, hidden 256,
 * FFN 1024, vocabulary 256; issue #11), as {@code -p form=F -p size=...}:
 * nn 2048x256x768, 2048x256x256, 2048x256x1024, 2048x1024x256;
 * nt 2048x768x256, 2048x256x256, 2048x1024x256, 2048x256x1024;
 * tn 256x2048x768, 256x2048x256, 256x2048x1024, 1024x2048x256.
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

    /** nn, nt or tn (above). */
    @Param({"nn"})
    public String form;

    @Param({"f32", "bf16"})
    public String dtype;

    @Param({"avx2", "avx512", "avx512_bf16"})
    public String isa;

    private TensorScope scope;
    private Tensor a;
    private Tensor b;
    private Tensor c;
    private boolean transA;
    private boolean transB;
    private float beta;

    @Setup(Level.Trial)
    public void setup() {
        String[] mkn = size.split("x");
        int m = Integer.parseInt(mkn[0]), k = Integer.parseInt(mkn[1]), n = Integer.parseInt(mkn[2]);
        DType type = BenchmarkData.floatType(dtype);
        CpuLevel.named(isa).selectForKernels();
        scope = TensorScope.shared(CpuBackend.get());
        transA = form.equals("tn");
        transB = form.equals("nt");
        if (!transA && !transB && !form.equals("nn")) {
            throw new IllegalArgumentException("form must be nn, nt or tn: " + form);
        }
        beta = transA ? 1f : 0f;
        a = transA ? scope.allocate("a", type, k, m) : scope.allocate("a", type, m, k);
        b = transB ? scope.allocate("b", type, n, k) : scope.allocate("b", type, k, n);
        c = scope.allocate("c", transA ? DType.F32 : type, m, n);
        BenchmarkData.fillUniform(a, 1, 1f);
        BenchmarkData.fillUniform(b, 2, 1f);
        if (transA) {
            BenchmarkData.fillUniform(c, 3, 1f);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        scope.close();
    }

    @Benchmark
    public Tensor gemm() {
        CpuBackend.get().gemm(transA, transB, 1f, a, b, beta, c);
        return c;
    }
}
