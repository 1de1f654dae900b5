package dev.panamoe.runtime.train;

import dev.panamoe.ops.Backend;
import dev.panamoe.runtime.data.Tokenizer;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import java.nio.file.Path;

/**
 * A trained model read back from a checkpoint for inference (e.g. by a
 * {@link dev.panamoe.runtime.model.Generator}): the model with the checkpoint's parameters, the
 * tokenizer it was trained with, and the step it was saved at.
 *
 * <p>The newest committed step of a checkpoint directory opens, of a single device or of any
 * parallel plan: the model is the logical one its manifest indexes, on one device.
 *
 * @param model     the model, on the backend given to {@link #open}; the caller closes it
 * @param tokenizer the run's tokenizer, or null when its data was not text (the synthetic corpus)
 * @param step      optimizer steps the checkpoint was saved after
 * @param file      the manifest of that step
 */
public record TrainedModel(GptMoeModel model, Tokenizer tokenizer, int step, Path file) implements AutoCloseable {

    /**
     * Reads the newest committed checkpoint in the directory dir onto the backend, whatever plan
     * wrote it: each global tensor is put together from the rank files' slices
     * ({@link WorldCheckpoint}).
     *
     * @throws CheckpointException when there is none, a rank file is missing or damaged, or its
     *         configuration cannot be read
     */
    public static TrainedModel open(Backend backend, Path dir) {
        try (WorldCheckpoint c = WorldCheckpoint.open(dir)) {
            Path file = c.manifest().file();
            GptMoeConfig config = c.modelConfig();
            TrainingConfig training = c.trainingConfig();
            Tokenizer tokenizer = training.tokenizer() == null ? null : Tokenizer.of(training.tokenizer());
            if (tokenizer != null && tokenizer.vocabSize() != config.vocab()) {
                throw new CheckpointException("checkpoint " + file + " has a model of vocab " + config.vocab()
                        + " but tokenizer " + tokenizer.name() + " of " + tokenizer.vocabSize() + " ids");
            }
            GptMoeModel model = new GptMoeModel(backend, config, training.seed());
            try {
                InitialWeights.load(c.values(), model.parameters(),
                        model.parameters().stream().map(Checkpoint.Shard::whole).toList(), true);
            } catch (RuntimeException e) {
                model.close();
                throw e;
            }
            return new TrainedModel(model, tokenizer, c.manifest().step(), file);
        }
    }

    @Override
    public void close() {
        model.close();
    }
}
