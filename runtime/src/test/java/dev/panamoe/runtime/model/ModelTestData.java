package dev.panamoe.runtime.model;

import dev.panamoe.ops.Parameter;
import java.util.SplittableRandom;

/** Small configurations, random batches and parameter access shared by the model tests. */
final class ModelTestData {
    private ModelTestData() {
    }

    /** 2 blocks (block 0 dense, block 1 MoE with 4 experts top-2), hidden 8, 2 heads, vocab 11, seq <= 6. */
    static GptMoeConfig.Builder small() {
        return GptMoeConfig.builder().vocab(11).maxSeq(6).layers(2).hidden(8).heads(2).moeEvery(2).experts(4)
                .topK(2).expertFfn(6).denseFfn(12);
    }

    /** A batch x seq row-major array of ids in [min, vocab). */
    static int[] ids(SplittableRandom rng, int count, int min, int vocab) {
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = rng.nextInt(min, vocab);
        }
        return ids;
    }

    static float[] values(Parameter p) {
        return p.value().toFloatArray();
    }

    static float[] grads(Parameter p) {
        return p.grad().toFloatArray();
    }
}
