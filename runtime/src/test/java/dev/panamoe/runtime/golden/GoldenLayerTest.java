package dev.panamoe.runtime.golden;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.DropPolicy;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The single-device MoE layer's forward and backward, bit for bit as recorded: output, input
 * gradient, aux and z losses and every parameter gradient, in f32 and bf16, with capacity drops
 * and dropless, at the CPU's level and at AVX2.
 */
class GoldenLayerTest {
    private static final Backend CPU = CpuBackend.get();
    private static final int TOKENS = 96;

    @ParameterizedTest(name = "{0}, capacity {1}, {2}")
    @CsvSource({"F32,1.25,native", "F32,0,native", "BF16,1.25,native", "BF16,0,native", "F32,1.25,avx2",
        "F32,0,avx2", "BF16,1.25,avx2", "BF16,0,avx2"})
    void layerForwardAndBackwardAsRecorded(DType dtype, double capacity, String level) {
        MoELayer.Config.Builder builder = MoELayer.Config.builder().hidden(64).ffn(96).experts(8).topK(2)
                .auxLossCoeff(0.01f).zLossCoeff(0.001f).dtype(dtype);
        MoELayer.Config config = capacity > 0
                ? builder.capacityFactor(capacity).dropPolicy(DropPolicy.BY_PROBABILITY).build()
                : builder.dropless().build();
        GoldenLevels.at(level, () -> {
            try (TensorScope scope = TensorScope.confined(CPU); MoELayer layer = new MoELayer(CPU, config, 99)) {
                Tensor x = random(scope, "x", dtype, 1);
                Tensor gradY = random(scope, "gradY", dtype, 2);
                Golden golden = Golden.named("layer-" + dtype + "-" + (capacity > 0 ? "capacity" : "dropless"));
                golden.value("y", layer.forward(x).toFloatArray());
                golden.scalar("aux", layer.workspace().auxLoss()).scalar("z", layer.workspace().zLoss());
                golden.value("gradX", layer.backward(gradY).toFloatArray());
                for (Parameter p : layer.parameters()) {
                    golden.value("grad " + p.name(), p.grad().toFloatArray());
                }
                golden.check();
            }
        });
    }

    private static Tensor random(TensorScope scope, String name, DType dtype, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] v = new float[TOKENS * 64];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        Tensor t = scope.allocate(name, dtype, TOKENS, 64);
        t.copyFrom(v);
        return t;
    }
}
