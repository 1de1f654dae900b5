package dev.panamoe.jmh;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
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
 * The whole MoE layer on the CPU backend (SwiGLU experts, top-k softmax router, dropless):
 * forward, forward + backward, and a training step's share of it, f32 or bf16 (bf16 activations
 * and working copies of the weights, f32 masters and weight gradients), with the CPU kernels at
 * a chosen ISA level (a level the CPU lacks fails its setup, naming the missing feature). GFLOP/s = {@link MoeShape}
 * FLOPs / time (see jmh/README.md).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 4)
@Measurement(iterations = 5, time = 4)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class MoELayerBenchmark {

    @Param({"mixtral/4", "deepseek/4"})
    public String shape;

    @Param({"f32", "bf16"})
    public String dtype;

    @Param({"avx2", "avx512", "avx512_bf16"})
    public String isa;

    private TensorScope scope;
    private MoELayer layer;
    private Tensor x;
    private Tensor gradY;

    @Setup(Level.Trial)
    public void setup() {
        MoeShape s = MoeShape.named(shape);
        DType type = BenchmarkData.floatType(dtype);
        CpuLevel.named(isa).selectForKernels();
        CpuBackend backend = CpuBackend.get();
        scope = TensorScope.shared(backend);
        layer = new MoELayer(backend, MoELayer.Config.builder()
                .hidden(s.hidden()).ffn(s.ffn()).experts(s.experts()).topK(s.topK())
                .activation(Activation.SWIGLU).dropless().dtype(type).build(), 1);
        x = scope.allocate("x", type, s.tokens(), s.hidden());
        gradY = scope.allocate("gradY", type, s.tokens(), s.hidden());
        BenchmarkData.fillUniform(x, 2, 1f);
        BenchmarkData.fillUniform(gradY, 3, 1e-3f);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        layer.close();
        scope.close();
    }

    @Benchmark
    public Tensor forward() {
        return layer.forward(x);
    }

    @Benchmark
    public Tensor forwardBackward() {
        layer.forward(x);
        return layer.backward(gradY);
    }

    /**
     * The layer's share of a training step, as the trainer runs it: the weight gradients
     * discarded (MoELayer.discardGradients: the router's zeroed, the experts' written rather than
     * added to by the backward; they accumulate in f32), forward + backward and, in bf16, the
     * working copies rounded from the f32 masters after it — the costs mixed precision adds to the
     * layer inside training; the optimizer itself is not included. The trainer has its AdamW step
     * write the copies in the update's pass instead, so this separate pass is what a layer used on
     * its own pays, an upper bound of the trainer's cost. (Until 2026-12-06 the gradients were
     * zeroed with a pass of their own, as MoELayer.zeroGrad does: about 16 ms more on mixtral/4.)
     */
    @Benchmark
    public Tensor trainingStep() {
        layer.discardGradients();
        layer.forward(x);
        Tensor gradX = layer.backward(gradY);
        layer.refreshWorkingCopies();
        return gradX;
    }
}
