package dev.panamoe.examples;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import java.util.Arrays;
import java.util.Locale;

/**
 * A training loop driven from Java: the {@code tiny} GPT-MoE on the synthetic corpus of hidden Markov
 * sources, one {@link Trainer#trainStep()} at a time, with a validation loss against the corpus's
 * unigram loss (the best a model that ignores context can do).
 */
public final class TrainingLoopExample {
    private TrainingLoopExample() {
    }

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 150;
        Backend cpu = CpuBackend.get();
        TrainingConfig config = TrainingConfig.builder().steps(steps).batch(16).seq(64).lr(3e-3f).minLr(3e-4f)
                .evalEvery(steps).build();
        SyntheticCorpus corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.seq()));
        GptMoeConfig modelConfig = GptMoeConfig.preset("tiny").toBuilder().vocab(corpus.vocabSize())
                .maxSeq(config.seq()).build();
        try (GptMoeModel model = new GptMoeModel(cpu, modelConfig, 1);
             Trainer trainer = new Trainer(model, corpus, config)) {
            StepMetrics first = null;
            for (int s = 1; s <= steps; s++) {
                StepMetrics m = trainer.trainStep();
                if (first == null) {
                    first = m;
                }
                if (s % 50 == 0 || s == steps) {
                    System.out.printf(Locale.ROOT, "step %d  loss %.4f  lr %.2e  grad norm %.3f%n", m.step(), m.loss(),
                            m.lr(), m.gradNorm());
                }
            }
            System.out.printf(Locale.ROOT, "first loss %.4f%n", first.loss());
            System.out.printf(Locale.ROOT, "unigram loss %.4f%n", corpus.unigramLoss());
            System.out.printf(Locale.ROOT, "val loss %.4f%n", trainer.evaluate());
            // Tokens routed to each expert of the first MoE layer in the last forward pass (evaluation).
            System.out.println("expert counts of MoE layer 0: " + Arrays.toString(model.expertCounts()[0]));
        }
    }
}
