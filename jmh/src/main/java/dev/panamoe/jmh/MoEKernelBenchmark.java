package dev.panamoe.jmh;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.DropPolicy;
import dev.panamoe.ops.ScoreFunction;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.ops.TensorTable;
import java.util.ArrayList;
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
 * Each CPU kernel of the MoE layer on its own, on the layer's shapes (SwiGLU, dropless, top-k
 * softmax router with renormalisation). Setup runs the forward pass once so every kernel sees
 * realistic inputs; each benchmark then repeats one kernel. GFLOP/s or GB/s: jmh/README.md.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 4, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class MoEKernelBenchmark {

    @Param({"mixtral/4", "deepseek/4"})
    public String shape;

    private Backend backend;
    private TensorScope scope;
    private int topK;
    private Tensor x, gate, logits, scores, topkWeights, topkIds;
    private Tensor counts, offsets, slotPosition, sortedSlot;
    private Tensor xs, h, act, expertOut, y;
    private Tensor gradY, gradExpertOut, gradWeights, gradAct, gradH, gradXs, gradX, gradLogits;
    private TensorTable w1, w2, gradW2;

    @Setup(Level.Trial)
    public void setup() {
        MoeShape s = MoeShape.named(shape);
        backend = CpuBackend.get();
        scope = TensorScope.shared(backend);
        topK = s.topK();
        int t = s.tokens(), d = s.hidden(), f = s.ffn(), e = s.experts(), slots = t * topK;
        x = random("x", 1, 1f, t, d);
        gate = random("gate", 2, 0.05f, d, e);
        logits = scope.allocate("logits", DType.F32, t, e);
        scores = scope.allocate("scores", DType.F32, t, e);
        topkWeights = scope.allocate("topkWeights", DType.F32, t, topK);
        topkIds = scope.allocate("topkIds", DType.I32, t, topK);
        counts = scope.allocate("counts", DType.I32, e);
        offsets = scope.allocate("offsets", DType.I32, e + 1);
        slotPosition = scope.allocate("slotPosition", DType.I32, t, topK);
        sortedSlot = scope.allocate("sortedSlot", DType.I32, slots);
        List<Tensor> w1s = new ArrayList<>(), w2s = new ArrayList<>(), gw2s = new ArrayList<>();
        for (int i = 0; i < e; i++) {
            w1s.add(random("w1." + i, 10 + i, 0.03f, d, 2 * f));
            w2s.add(random("w2." + i, 1000 + i, 0.03f, f, d));
            gw2s.add(scope.allocate("gradW2." + i, DType.F32, f, d));
        }
        w1 = scope.table("w1", w1s);
        w2 = scope.table("w2", w2s);
        gradW2 = scope.table("gradW2", gw2s);
        xs = scope.allocate("xs", DType.F32, slots, d);
        h = scope.allocate("h", DType.F32, slots, 2 * f);
        act = scope.allocate("act", DType.F32, slots, f);
        expertOut = scope.allocate("expertOut", DType.F32, slots, d);
        y = scope.allocate("y", DType.F32, t, d);
        gradY = random("gradY", 3, 1e-3f, t, d);
        gradExpertOut = scope.allocate("gradExpertOut", DType.F32, slots, d);
        gradWeights = scope.allocate("gradWeights", DType.F32, t, topK);
        gradAct = scope.allocate("gradAct", DType.F32, slots, f);
        gradH = scope.allocate("gradH", DType.F32, slots, 2 * f);
        gradXs = scope.allocate("gradXs", DType.F32, slots, d);
        gradX = scope.allocate("gradX", DType.F32, t, d);
        gradLogits = scope.allocate("gradLogits", DType.F32, t, e);
        // One forward pass, so every benchmark below starts from the layer's real intermediate values.
        gateGemm();
        router();
        dispatchPlan();
        permute();
        expertUp();
        swiglu();
        expertDown();
        combine();
    }

    private Tensor random(String name, long seed, float scale, int... shape) {
        Tensor t = scope.allocate(name, DType.F32, shape);
        BenchmarkData.fillUniform(t, seed, scale);
        return t;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        scope.close();
    }

    @Benchmark
    public Tensor gateGemm() {
        backend.gemm(false, false, 1f, x, gate, 0f, logits);
        return logits;
    }

    @Benchmark
    public Tensor router() {
        backend.routerForward(ScoreFunction.SOFTMAX, true, logits, scores, topkWeights, topkIds);
        return topkIds;
    }

    @Benchmark
    public Tensor routerBackward() {
        backend.routerBackward(ScoreFunction.SOFTMAX, true, scores, topkIds, gradWeights, null, gradLogits);
        return gradLogits;
    }

    @Benchmark
    public Tensor dispatchPlan() {
        backend.dispatchPlan(topkIds, topkWeights, null, counts.dim(0), Backend.CAPACITY_DROPLESS,
                DropPolicy.BY_POSITION, counts, offsets, slotPosition, sortedSlot);
        return sortedSlot;
    }

    @Benchmark
    public Tensor permute() {
        backend.permute(x, sortedSlot, topK, xs);
        return xs;
    }

    @Benchmark
    public Tensor permuteBackward() {
        backend.permuteBackward(gradXs, slotPosition, gradX);
        return gradX;
    }

    @Benchmark
    public Tensor expertUp() {
        backend.groupedGemmNn(offsets, xs, w1, h);
        return h;
    }

    @Benchmark
    public Tensor swiglu() {
        backend.activationForward(Activation.SWIGLU, h, act);
        return act;
    }

    @Benchmark
    public Tensor swigluBackward() {
        backend.activationBackward(Activation.SWIGLU, h, gradAct, gradH);
        return gradH;
    }

    @Benchmark
    public Tensor expertDown() {
        backend.groupedGemmNn(offsets, act, w2, expertOut);
        return expertOut;
    }

    @Benchmark
    public Tensor expertDownDataGrad() {
        backend.groupedGemmNt(offsets, gradExpertOut, w2, gradAct);
        return gradAct;
    }

    @Benchmark
    public TensorTable expertDownWeightGrad() {
        backend.groupedGemmTn(offsets, act, gradExpertOut, 0f, gradW2);
        return gradW2;
    }

    @Benchmark
    public Tensor combine() {
        backend.combine(expertOut, topkWeights, slotPosition, y);
        return y;
    }

    @Benchmark
    public Tensor combineBackward() {
        backend.combineBackward(gradY, expertOut, topkWeights, slotPosition, gradExpertOut, gradWeights);
        return gradExpertOut;
    }
}
