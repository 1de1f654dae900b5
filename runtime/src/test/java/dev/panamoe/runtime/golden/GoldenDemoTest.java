package dev.panamoe.runtime.golden;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Single-device training as the demo runs it (the tiny preset on the synthetic corpus, the demo's
 * learning-rate schedule, weight decay and clipping), 24 steps in 2 micro-batches with an
 * evaluation every 8: every step's metrics and the final parameters, bit for bit as recorded.
 */
class GoldenDemoTest {

    @ParameterizedTest
    @ValueSource(strings = {"native", "avx2"})
    void demoSizedTrainingAsRecorded(String level) {
        TrainingConfig config = TrainingConfig.builder().steps(24).batch(16).microBatches(2).seq(64).lr(3e-3f)
                .minLr(3e-4f).warmup(3).weightDecay(0.1f).clipNorm(1f).evalEvery(8).evalBatches(2).seed(1).build();
        SyntheticCorpus corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.seq()));
        GptMoeConfig modelConfig = GptMoeConfig.preset("tiny").toBuilder().vocab(corpus.vocabSize())
                .maxSeq(config.seq()).build();
        GoldenLevels.at(level, () -> {
            try (GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, config.seed());
                    Trainer trainer = new Trainer(model, corpus, config)) {
                trainer.run(m -> { });
                Map<String, float[]> values = new LinkedHashMap<>();
                for (Parameter p : model.parameters()) {
                    values.put(p.name(), p.value().toFloatArray());
                }
                Golden.named("demo").steps("demo", trainer.history()).values("demo", values).check();
            }
        });
    }
}
