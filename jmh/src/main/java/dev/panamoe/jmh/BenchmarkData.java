package dev.panamoe.jmh;

import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import java.util.SplittableRandom;

/** Seeded random fills and the element types benchmarks take as a parameter. */
final class BenchmarkData {
    private BenchmarkData() {}

    /** Fills t (f32, or bf16 rounded to nearest even) with uniform values in [-scale, scale). */
    static void fillUniform(Tensor t, long seed, float scale) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
        }
        t.copyFrom(values);
    }

    /** The dtype parameter of a benchmark: "f32" or "bf16". */
    static DType floatType(String dtype) {
        return switch (dtype) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new IllegalArgumentException("dtype: expected f32 or bf16, got '" + dtype + "'");
        };
    }
}
