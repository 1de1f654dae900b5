package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * GradientSync's sums over a group of in-JVM ranks: in f32 (the communicator's sum, in rank
 * order) and in bf16 (each rank's gradients rounded to bf16, added in f32 in rank order, the sum
 * rounded to bf16), bit for bit, over buckets whose sizes do not divide by the group size.
 */
class GradientSyncTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(60);
    /** Gradients of 5, 7, 300 and 1 elements in buckets of at most 8: 5 | 7 | 300 | 1, none a multiple of 3. */
    private static final int[] SIZES = {5, 7, 300, 1};
    private static final int BUCKET = 8;

    /** Rank r's gradient i: values spread over magnitudes and signs, most of them not bf16 numbers. */
    private static float[] gradient(int rank, int i) {
        Random rnd = new Random(1000L * rank + i);
        float[] g = new float[SIZES[i]];
        for (int j = 0; j < g.length; j++) {
            g[j] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(7) - 3));
        }
        return g;
    }

    /** Every rank's gradients after one allReduce, by rank; the last parameter belongs to no group. */
    private static List<List<float[]>> reduce(int ranks, boolean bf16) {
        return InJvmWorld.run(ranks, TIMEOUT, comm -> {
            try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
                List<ShardedParameter> params = new ArrayList<>();
                for (int i = 0; i < SIZES.length; i++) {
                    Parameter p = Parameter.allocate(scope, "p" + i, SIZES[i]);
                    p.grad().copyFrom(gradient(comm.rank(), i));
                    params.add(new ShardedParameter(p, new int[] {SIZES[i]}, null, comm, true));
                }
                Parameter alone = Parameter.allocate(scope, "alone", 3);
                alone.grad().copyFrom(new float[] {0.1f, 0.2f, 0.3f});
                params.add(new ShardedParameter(alone, new int[] {3}, null, null, true));
                try (GradientSync sync = new GradientSync(CpuBackend.get(), params, BUCKET, bf16)) {
                    assertEquals(SIZES.length, sync.bucketCount());
                    sync.allReduce();
                }
                List<float[]> out = new ArrayList<>();
                for (ShardedParameter p : params) {
                    out.add(p.parameter().grad().toFloatArray());
                }
                return out;
            }
        });
    }

    private static float bf16(float v) {
        return Tensor.bf16ToFloat(Tensor.floatToBf16(v));
    }

    @Test
    void bf16SendsRoundedGradientsAndAddsThemInF32() {
        int ranks = 3;
        List<List<float[]>> got = reduce(ranks, true);
        List<List<float[]>> f32 = reduce(ranks, false);
        for (int i = 0; i < SIZES.length; i++) {
            float[] want = new float[SIZES[i]], wantF32 = new float[SIZES[i]];
            for (int r = 0; r < ranks; r++) {
                float[] g = gradient(r, i);
                for (int j = 0; j < g.length; j++) {
                    want[j] += bf16(g[j]);
                    wantF32[j] += g[j];
                }
            }
            for (int j = 0; j < want.length; j++) {
                want[j] = bf16(want[j]);
            }
            for (int r = 0; r < ranks; r++) {
                assertArrayEquals(want, got.get(r).get(i), "bf16 sum of gradient " + i + " on rank " + r);
                assertArrayEquals(wantF32, f32.get(r).get(i), "f32 sum of gradient " + i + " on rank " + r);
            }
            // the two really differ: the bf16 sums are rounded
            assertNotEquals(Arrays.toString(wantF32), Arrays.toString(want), "gradient " + i);
        }
        for (int r = 0; r < ranks; r++) {
            assertArrayEquals(new float[] {0.1f, 0.2f, 0.3f}, got.get(r).get(SIZES.length), "a gradient of no group");
        }
    }

    @Test
    void aGroupOfOneRankKeepsItsF32Gradients() {
        List<List<float[]>> got = reduce(1, true);
        for (int i = 0; i < SIZES.length; i++) {
            assertArrayEquals(gradient(0, i), got.getFirst().get(i), "gradient " + i + " summed over one rank");
        }
    }
}
