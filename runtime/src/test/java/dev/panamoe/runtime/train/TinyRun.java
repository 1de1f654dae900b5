package dev.panamoe.runtime.train;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import java.util.ArrayList;
import java.util.List;

/** A model and corpus small enough for a step to take milliseconds: one dense and one MoE block. */
final class TinyRun {
    static final int SEQ = 8;

    private TinyRun() {
    }

    static SyntheticCorpus corpus() {
        return new SyntheticCorpus(new SyntheticCorpus.Config(16, 4, 1, 3, SEQ, 0.5, 0.0, 7));
    }

    static GptMoeConfig model() {
        return GptMoeConfig.builder().vocab(16).maxSeq(SEQ).layers(2).hidden(16).heads(2).moeEvery(2).experts(4)
                .topK(2).build();
    }

    static GptMoeModel newModel(long seed) {
        return new GptMoeModel(CpuBackend.get(), model(), seed);
    }

    static TrainingConfig.Builder config() {
        return TrainingConfig.builder().steps(8).batch(4).microBatches(2).seq(SEQ).lr(1e-2f).minLr(1e-3f).warmup(2)
                .evalEvery(3).evalBatches(2).seed(3);
    }

    /** Every parameter's value, in the model's order. */
    static List<float[]> values(GptMoeModel model) {
        List<float[]> v = new ArrayList<>();
        for (Parameter p : model.parameters()) {
            v.add(p.value().toFloatArray());
        }
        return v;
    }
}
