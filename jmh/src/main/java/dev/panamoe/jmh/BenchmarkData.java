package dev.panamoe.jmh;

import dev.panamoe.ops.Tensor;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/** Seeded random fills for benchmark inputs. */
final class BenchmarkData {
    private BenchmarkData() {}

    /** Fills t (f32) with uniform values in [-scale, scale). */
    static void fillUniform(Tensor t, long seed, float scale) {
        SplittableRandom random = new SplittableRandom(seed);
        var data = t.data();
        for (long i = 0; i < t.numel(); i++) {
            data.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) ((random.nextDouble() * 2 - 1) * scale));
        }
    }
}
