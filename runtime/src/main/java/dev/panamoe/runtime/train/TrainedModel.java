package dev.panamoe.runtime.train;

import dev.panamoe.ops.Backend;
import dev.panamoe.runtime.data.Tokenizer;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A trained model read back from a checkpoint for inference (e.g. by a
 * {@link dev.panamoe.runtime.model.Generator}): the model with the checkpoint's parameters, the
 * tokenizer it was trained with, and the step it was saved at.
 *
 * <p>The newest committed step of a checkpoint directory opens: a single device's always; a
 * parallel run's (one rank file per rank) when every rank holds the whole model (a pure
 * data-parallel plan: pp = tp = ep = 1), from rank 0's file; a plan that shards the model is
 * refused, since putting the shards back together is not supported yet.
 *
 * @param model     the model, on the backend given to {@link #open}; the caller closes it
 * @param tokenizer the run's tokenizer, or null when its data was not text (the synthetic corpus)
 * @param step      optimizer steps the checkpoint was saved after
 * @param file      the file read
 */
public record TrainedModel(GptMoeModel model, Tokenizer tokenizer, int step, Path file) implements AutoCloseable {

    /**
     * Reads the newest committed checkpoint in the directory dir onto the backend.
     *
     * @throws CheckpointException when there is none, it is damaged, or it shards the model
     */
    public static TrainedModel open(Backend backend, Path dir) {
        CheckpointStore store = rankZero(dir);
        Checkpoint.Loaded c = store.load();
        Path file = store.rankFile(c.step(), 0);
        Map<String, String> modelFields = c.model();
        String plan = modelFields.get("plan");
        if (plan != null) {
            if (!plan.matches("pp=1,tp=1,ep=1,edp=\\d+")) {
                throw new CheckpointException("checkpoint " + dir + " was saved by a parallel run under plan " + plan
                        + ", whose ranks each hold part of the model; sampling from it needs resharding, which is not "
                        + "supported yet (a pure data-parallel plan, pp=tp=ep=1, or a single device can be sampled)");
            }
            modelFields = RecordFields.fromToString(modelFields.get("model"));
            if (modelFields == null) {
                throw new CheckpointException("checkpoint " + file + " has no model configuration");
            }
        }
        GptMoeConfig config;
        TrainingConfig training;
        try {
            config = RecordFields.parse(GptMoeConfig.class, modelFields);
            training = RecordFields.parse(TrainingConfig.class, c.training());
        } catch (IllegalArgumentException e) {
            throw new CheckpointException("checkpoint " + file + " has a configuration this build cannot read: "
                    + e.getMessage());
        }
        Tokenizer tokenizer = training.tokenizer() == null ? null : Tokenizer.of(training.tokenizer());
        if (tokenizer != null && tokenizer.vocabSize() != config.vocab()) {
            throw new CheckpointException("checkpoint " + file + " has a model of vocab " + config.vocab()
                    + " but tokenizer " + tokenizer.name() + " of " + tokenizer.vocabSize() + " ids");
        }
        GptMoeModel model = new GptMoeModel(backend, config, training.seed());
        try (AdamW optimizer = AdamW.of(backend, model.parameters(), training)) {
            // The moments are read along with the values; they are dropped with the optimizer.
            c.restore(new Checkpoint.Snapshot(c.step(), c.dataPosition(), c.model(), c.training(), c.data(),
                    optimizer.states()));
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
        return new TrainedModel(model, tokenizer, c.step(), file);
    }

    /**
     * Rank 0's view of dir's newest committed step (a single device's only file), whose load
     * checks the file against its manifest as a resume does.
     */
    private static CheckpointStore rankZero(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new CheckpointException("checkpoint directory " + dir + " does not exist");
        }
        CheckpointStore.Manifest newest = CheckpointStore.newest(dir);
        if (newest == null) {
            throw new CheckpointException("checkpoint directory " + dir + " holds no checkpoint: no step was committed (no"
                    + " step-*.manifest.json)");
        }
        return new CheckpointStore(dir, 0, newest.world(), null);
    }

    @Override
    public void close() {
        model.close();
    }
}
