package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * forward + backward of the layer are bitwise reproducible: across runs, layers built from one
 * seed, and thread counts; in f32 and in bf16 (mixed precision).
 */
class MoELayerDeterminismTest {
    private static final Backend CPU = CpuBackend.get();

    /** Big enough that every parallel kernel splits its work between two threads. */
    private static final MoELayer.Config.Builder CONFIG = MoELayer.Config.builder().hidden(64).ffn(96).experts(8).topK(2)
            .capacityFactor(1.25).dropPolicy(DropPolicy.BY_PROBABILITY);
    private static final int TOKENS = 96;

    /** y, gradX, then every parameter gradient, as raw float bits. */
    private static List<int[]> run(MoELayer layer, Tensor x, Tensor gradY) {
        layer.zeroGrad();
        List<int[]> out = new ArrayList<>();
        out.add(bits(layer.forward(x).toFloatArray()));
        out.add(bits(layer.backward(gradY).toFloatArray()));
        for (Parameter p : layer.parameters()) {
            out.add(bits(p.grad().toFloatArray()));
        }
        return out;
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = Float.floatToRawIntBits(v[i]);
        }
        return b;
    }

    private static void assertBitwiseEqual(List<int[]> expected, List<int[]> actual, String what) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), what + ": result " + i + " (0 = y, 1 = gradX, then gradients)");
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void repeatedRunsAndSameSeedLayersAreBitwiseIdentical(DType dtype) {
        MoELayer.Config config = CONFIG.dtype(dtype).build();
        try (TensorScope scope = TensorScope.confined(CPU); MoELayer a = new MoELayer(CPU, config, 99);
                MoELayer b = new MoELayer(CPU, config, 99)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(TOKENS, config.hidden(), 1), dtype);
            Tensor gradY = TestData.tensor(scope, "gradY", TestData.input(TOKENS, config.hidden(), 2), dtype);
            List<int[]> first = run(a, x, gradY);
            assertBitwiseEqual(first, run(a, x, gradY), "second run");
            assertBitwiseEqual(first, run(a, x, gradY), "third run");
            assertBitwiseEqual(first, run(b, x, gradY), "layer built from the same seed");
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void oneAndTwoThreadsAreBitwiseIdentical(DType dtype) {
        int threads = CPU.numThreads();
        MoELayer.Config config = CONFIG.dtype(dtype).build();
        try (TensorScope scope = TensorScope.confined(CPU); MoELayer layer = new MoELayer(CPU, config, 5)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(TOKENS, config.hidden(), 3), dtype);
            Tensor gradY = TestData.tensor(scope, "gradY", TestData.input(TOKENS, config.hidden(), 4), dtype);
            CPU.setNumThreads(1);
            assertEquals(1, CPU.numThreads());
            List<int[]> one = run(layer, x, gradY);
            CPU.setNumThreads(2);
            assertEquals(2, CPU.numThreads());
            assertBitwiseEqual(one, run(layer, x, gradY), "2 threads vs 1");
        } finally {
            CPU.setNumThreads(threads);
        }
    }
}
