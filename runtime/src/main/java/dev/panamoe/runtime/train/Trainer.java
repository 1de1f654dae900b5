package dev.panamoe.runtime.train;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.data.Batch;
import dev.panamoe.runtime.data.Corpus;
import dev.panamoe.runtime.data.Split;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.OperatorTimer;
import dev.panamoe.runtime.report.StepMetrics;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Consumer;

/**
 * Trains a {@link GptMoeModel} on a {@link Corpus}. One optimizer step:
 * <pre>
 *   zero the gradients
 *   for each of the microBatches micro-batches:      (the next batch / microBatches training sequences)
 *       loss = model.forward(inputs, targets);  model.backward(1 / microBatches)   (cross-entropy + aux loss)
 *   norm = sqrt(sum of squares of all gradients);  if norm > clipNorm: gradients *= clipNorm / norm
 *   AdamW at the scheduled learning rate
 *   every evalEvery steps and at the last: mean loss over evalBatches held-out micro-batches
 * </pre>
 * {@link #run} repeats it up to {@link TrainingConfig#stopAt()}, writing a metrics line per step and a
 * checkpoint where configured. The run's state is the model's parameters, the AdamW moments, the
 * step and the data position: all a {@link Checkpoint} holds, so a resumed run continues bitwise as
 * the uninterrupted one would have.
 */
public final class Trainer implements AutoCloseable {

    private final GptMoeModel model;
    private final Corpus corpus;
    private final TrainingConfig config;
    private final Backend backend;
    private final LrSchedule schedule;
    private final AdamW optimizer;
    private final List<Parameter> parameters;
    private final OperatorTimer timer = new OperatorTimer();
    private final List<StepMetrics> history = new ArrayList<>();
    private int step;
    private long dataPosition;
    private long[][][] expertSourceCounts;
    private CheckpointStore checkpoints;

    /** A fresh run at step 0; the model keeps its parameters (its initialisation, or what the caller set). */
    public Trainer(GptMoeModel model, Corpus corpus, TrainingConfig config) {
        if (corpus.seqLen() != config.seq()) {
            throw new IllegalArgumentException("seq: the training config has " + config.seq() + ", the corpus "
                    + corpus.seqLen());
        }
        if (config.seq() > model.config().maxSeq()) {
            throw new IllegalArgumentException("seq: " + config.seq() + " exceeds the model's maxSeq "
                    + model.config().maxSeq());
        }
        if (corpus.vocabSize() > model.config().vocab()) {
            throw new IllegalArgumentException("vocab: the corpus has " + corpus.vocabSize()
                    + " tokens, more than the model's vocab " + model.config().vocab());
        }
        this.model = model;
        this.corpus = corpus;
        this.config = config;
        this.backend = model.backend();
        this.schedule = LrSchedule.of(config);
        this.parameters = model.parameters();
        this.optimizer = AdamW.of(backend, parameters, config);
        model.setTimer(timer);
    }

    public GptMoeModel model() {
        return model;
    }

    public TrainingConfig config() {
        return config;
    }

    public AdamW optimizer() {
        return optimizer;
    }

    public LrSchedule schedule() {
        return schedule;
    }

    /** Time per operator (the model's and the optimizer's) since this trainer was made. */
    public OperatorTimer timer() {
        return timer;
    }

    /** Optimizer steps done (including those before a resumed checkpoint). */
    public int step() {
        return step;
    }

    /** Position of the next training sequence in the corpus. */
    public long dataPosition() {
        return dataPosition;
    }

    /** The metrics of the steps this trainer ran, in order. */
    public List<StepMetrics> history() {
        return Collections.unmodifiableList(history);
    }

    /**
     * {@code [moeLayer][expert][source]}: the token-to-expert assignments of the last evaluation by
     * the hidden source of each token's sequence; null before an evaluation or when the corpus has
     * no sources.
     */
    public long[][][] expertSourceCounts() {
        return expertSourceCounts;
    }

    /**
     * Runs steps until {@link TrainingConfig#stopAt()}: each step's metrics go to the metrics file
     * (continued from the checkpoint's step on a resumed run) and to {@code onStep}; checkpoints are
     * written where {@link TrainingConfig#checkpointsAt} says. Returns the metrics of the steps run.
     */
    public List<StepMetrics> run(Consumer<StepMetrics> onStep) {
        return RunLoop.run(config, config.metrics(), this::step, this::trainStep, this::saveCheckpoint, onStep);
    }

    /** One optimizer step over the next batch, with an evaluation when one is due; returns its metrics. */
    public StepMetrics trainStep() {
        if (step >= config.steps()) {
            throw new IllegalStateException("step: all " + config.steps() + " steps are done");
        }
        int next = step + 1;
        long start = System.nanoTime();
        int micro = config.microBatches();
        model.zeroGrad();
        double loss = 0;
        double aux = 0;
        int[][] counts = null;
        for (int i = 0; i < micro; i++) {
            Batch b = corpus.batch(Split.TRAIN, dataPosition, config.microBatchSize());
            dataPosition = b.nextPosition();
            loss += model.forward(b.inputs(), b.targets(), b.batchSize(), b.seqLen());
            aux += model.auxLoss();
            counts = add(counts, model.expertCounts());
            model.backward(1f / micro);
        }
        loss /= micro;
        aux /= micro;
        double gradNorm = clipGradients();
        if (!Double.isFinite(loss) || !Double.isFinite(gradNorm)) {
            throw new IllegalStateException("step " + next + ": the training diverged (loss " + loss
                    + ", gradient norm " + gradNorm + "); try a lower --lr or --clip");
        }
        float lr = schedule.at(next);
        try (var t = timer.start("adamw")) {
            optimizer.step(lr, next);
        }
        step = next;
        double seconds = (System.nanoTime() - start) / 1e9;
        double valLoss = config.evaluatesAt(step) ? evaluate() : Double.NaN;
        StepMetrics m = new StepMetrics(step, loss, valLoss, (double) config.batch() * config.seq() / seconds, aux, lr,
                gradNorm, counts);
        history.add(m);
        return m;
    }

    private static int[][] add(int[][] sum, int[][] counts) {
        if (sum == null) {
            return counts;
        }
        for (int l = 0; l < sum.length; l++) {
            for (int e = 0; e < sum[l].length; e++) {
                sum[l][e] += counts[l][e];
            }
        }
        return sum;
    }

    /** Scales the gradients down to a global L2 norm of clipNorm when above; returns the norm before. */
    private double clipGradients() {
        try (var t = timer.start("clip")) {
            double norm = Math.sqrt(backend.sumSquares(parameters.stream().map(Parameter::grad).toList()));
            if (config.clipNorm() > 0 && norm > config.clipNorm()) {
                float scale = (float) (config.clipNorm() / norm);
                for (Parameter p : parameters) {
                    backend.scale(p.grad(), scale);
                }
            }
            return norm;
        }
    }

    /**
     * Mean loss over the first evalBatches micro-batches of the held-out split (the same sequences
     * at every evaluation); also counts which sources' tokens each expert received.
     */
    public double evaluate() {
        int size = config.microBatchSize();
        int experts = model.config().experts();
        long[][][] counts = corpus.sourceCount() == 0 ? null
                : new long[model.moeLayerCount()][experts][corpus.sourceCount()];
        double loss = 0;
        for (int i = 0; i < config.evalBatches(); i++) {
            Batch b = corpus.batch(Split.VALIDATION, (long) i * size, size);
            loss += model.forward(b.inputs(), b.targets(), b.batchSize(), b.seqLen());
            if (counts != null) {
                countSources(b, counts);
            }
        }
        expertSourceCounts = counts;
        return loss / config.evalBatches();
    }

    /** counts[layer][expert][source] += the (token, k) slots of the last forward. */
    private void countSources(Batch b, long[][][] counts) {
        for (int l = 0; l < counts.length; l++) {
            int[] ids = model.moeLayer(l).workspace().topkIds().toIntArray();
            int k = ids.length / (b.batchSize() * b.seqLen());
            for (int slot = 0; slot < ids.length; slot++) {
                counts[l][ids[slot]][b.sources()[slot / k / b.seqLen()]]++;
            }
        }
    }

    // ---- checkpoints ----

    /** The configured checkpoint directory's store (a world of one rank). */
    public CheckpointStore checkpoints() {
        if (checkpoints == null) {
            if (config.checkpointDir() == null) {
                throw new IllegalStateException("checkpointDir: no checkpoint directory configured");
            }
            checkpoints = CheckpointStore.single(config.checkpointDir());
        }
        return checkpoints;
    }

    /** Commits the run's state as the checkpoint of its step ({@link CheckpointStore}); returns the file written. */
    public Path saveCheckpoint() {
        return checkpoints().save(snapshot());
    }

    /**
     * Continues the run from the newest checkpoint of {@link #checkpoints()}: checks it belongs to
     * this model, configuration and data, then restores parameters, moments, step and data position.
     *
     * @throws CheckpointException when there is none, or it is truncated, corrupted or from another
     *         run; the model and optimizer are then untouched
     */
    public void resume() {
        Checkpoint.Loaded c = checkpoints().load();
        if (c.step() < 0 || c.step() > config.steps()) {
            throw new CheckpointException("checkpoint " + c.file() + " is at step " + c.step() + ", outside this run's [0, "
                    + config.steps() + "]");
        }
        c.restore(snapshot());
        step = c.step();
        dataPosition = c.dataPosition();
    }

    private Checkpoint.Snapshot snapshot() {
        return new Checkpoint.Snapshot(step, dataPosition, RecordFields.of(model.config()), config.toMap(),
                corpus.describe(), optimizer.states());
    }

    /** Frees the optimizer state and detaches the timer; the model stays open (it is the caller's). */
    @Override
    public void close() {
        model.setTimer(null);
        optimizer.close();
    }
}
