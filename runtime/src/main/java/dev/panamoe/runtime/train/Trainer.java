package dev.panamoe.runtime.train;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.data.Batch;
import dev.panamoe.runtime.data.Corpus;
import dev.panamoe.runtime.data.Split;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import dev.panamoe.runtime.parallel.CheckpointShards;
import dev.panamoe.runtime.parallel.GradientSync;
import dev.panamoe.runtime.parallel.PipelineSchedule;
import dev.panamoe.runtime.parallel.PlacementController;
import dev.panamoe.runtime.parallel.ProcessGroups;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.OperatorTimer;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PlacementPolicy;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.StringJoiner;
import java.util.function.Consumer;

/**
 * Trains a {@link GptMoeModel} on a {@link Corpus}: one rank's part of a run, every rank of the
 * world running one in step (a single device is a world of one). One optimizer step:
 * <pre>
 *   micro-batch i of the step = the next batch / microBatches training sequences;
 *     DP rank d (of dp = ep * edp) trains on its share d of it: batch / microBatches / dp sequences
 *   1F1B through the stages ({@link PipelineSchedule}), each rank backpropagating 1 / microBatches of
 *     its share of the micro-batch's mean loss and aux losses ({@link GptMoeModel#backward(int, float)});
 *     one stage runs forward and backward of each micro-batch in turn
 *   gradients summed over their replicas (DATA for dense weights, EXPERT_DATA for expert shards;
 *     bucketed, {@link GradientSync}) and between the two copies of a tied wte
 *   norm = sqrt(sum of squares of all gradients, every value once);
 *     clipping factor = clipNorm / norm if norm > clipNorm, else 1
 *   AdamW on this rank's shards at the scheduled learning rate, on the gradients times the
 *     clipping factor as it reads them (no pass of its own; the gradients keep their values)
 *   every evalEvery steps and at the last: mean loss over evalBatches held-out micro-batches
 * </pre>
 * A step of any plan equals one device's step on the same batch. The step's metrics are the same
 * on every rank; only world rank 0 writes the metrics file. The mean loss of a DP share equals its
 * share of the global mean when every share counts the same number of targets — always so with
 * the corpora, whose targets are all real tokens.
 *
 * <p>{@link #run} repeats steps up to {@link TrainingConfig#stopAt()}, writing a metrics line per
 * step and a checkpoint where configured. The run's state is the model's parameters, the AdamW
 * moments, the step and the data position (and the placement policy's counts): all a {@link
 * Checkpoint} holds, so a resumed run continues bitwise as the uninterrupted one would have.
 */
public final class Trainer implements AutoCloseable {
    private final GptMoeModel model;
    private final ProcessGroups groups;
    private final Corpus corpus;
    private final TrainingConfig config;
    private final Backend backend;
    private final PipelineSchedule pipeline;
    private final GradientSync sync;
    private final LrSchedule schedule;
    private final AdamW optimizer;
    private final int dp;
    private final int dataIndex;
    private final boolean firstTensorRank;
    private final Precision.Resolved precision;
    private final OperatorTimer timer = new OperatorTimer();
    private final List<StepMetrics> history = new ArrayList<>();
    private PlacementController placement;
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
        this.groups = model.groups();
        validate(groups.plan(), model.config(), config);
        this.precision = config.precision().resolve(model.backend().device());
        if (precision.dtype() != model.dtype()) {
            throw new IllegalArgumentException("precision: " + precision + " trains a model built in "
                    + precision.dtype() + ", got one built in " + model.dtype());
        }
        this.model = model;
        this.corpus = corpus;
        this.config = config;
        this.backend = model.backend();
        this.dp = groups.plan().dataParallel();
        this.dataIndex = groups.layout().dataIndex(groups.rank());
        this.firstTensorRank = groups.coordinates().tp() == 0;
        this.pipeline = new PipelineSchedule(model, groups.pipeline());
        this.sync = new GradientSync(backend, model.shardedParameters(), GradientSync.BUCKET_ELEMENTS,
                config.reducesGradientsInBf16(precision));
        this.schedule = LrSchedule.of(config);
        this.optimizer = AdamW.of(backend, model.parameters(), config);
        model.setTimer(timer);
    }

    /**
     * Throws IllegalArgumentException naming the first constraint the plan breaks for this model
     * and training: those of {@link ParallelPlan#validate}, and every micro-batch divisible among
     * the data-parallel ranks. Call it before starting the ranks, so a bad plan fails once.
     */
    public static void validate(ParallelPlan plan, GptMoeConfig model, TrainingConfig config) {
        plan.validate(model.shape());
        int dp = plan.dataParallel();
        if (config.microBatchSize() % dp != 0) {
            throw new IllegalArgumentException("batch: " + config.batch() + " sequences in " + config.microBatches()
                    + " micro-batches of " + config.microBatchSize() + " cannot be shared by the " + dp
                    + " data-parallel ranks (ep * dp); batch must be divisible by microBatches * " + dp);
        }
    }

    public GptMoeModel model() {
        return model;
    }

    public TrainingConfig config() {
        return config;
    }

    /** What the run trains in (fp32 or bf16, auto resolved on the model's device) and why. */
    public Precision.Resolved precision() {
        return precision;
    }

    public AdamW optimizer() {
        return optimizer;
    }

    public LrSchedule schedule() {
        return schedule;
    }

    /** Time per operator (the model's, clipping and the optimizer's) since this trainer was made. */
    public OperatorTimer timer() {
        return timer;
    }

    /**
     * Trains under policy's expert placements from now on: its initial placement, then after each
     * step its decisions, applied by exact live migration. A rank of a plan only (the single
     * device's MoE layer has no slots to move; transitional, issue 10). Collective: every rank,
     * before its first step.
     */
    public PlacementController usePlacement(PlacementPolicy policy) {
        if (model.isSingleDevice()) {
            throw new IllegalStateException("usePlacement: the model of a single device keeps its experts in place; "
                    + "build it on ProcessGroups of a plan to move them");
        }
        placement = new PlacementController(policy, model, groups, optimizer);
        return placement;
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
     * the hidden source of each token's sequence; null before an evaluation, when the corpus has no
     * sources, or on a rank of a plan (which sees only its share of the tokens).
     */
    public long[][][] expertSourceCounts() {
        return expertSourceCounts;
    }

    /**
     * Runs steps until {@link TrainingConfig#stopAt()}: each step's metrics go to the metrics file
     * (world rank 0 only; continued from the checkpoint's step on a resumed run) and to {@code
     * onStep}; every rank writes its checkpoint where {@link TrainingConfig#checkpointsAt} says.
     * Returns the metrics of the steps run.
     */
    public List<StepMetrics> run(Consumer<StepMetrics> onStep) {
        Path file = groups.rank() == 0 ? config.metrics() : null;
        List<StepMetrics> ran = new ArrayList<>();
        try (MetricsWriter metrics = file == null ? null
                : step == 0 ? MetricsWriter.create(file) : MetricsWriter.resume(file, step)) {
            while (step < config.stopAt()) {
                StepMetrics m = trainStep();
                ran.add(m);
                if (metrics != null) {
                    metrics.write(m);
                }
                onStep.accept(m);
                if (config.checkpointsAt(step)) {
                    saveCheckpoint();
                }
            }
        }
        return ran;
    }

    /** One optimizer step over the next global batch, with an evaluation when one is due; returns its metrics. */
    public StepMetrics trainStep() {
        if (step >= config.steps()) {
            throw new IllegalStateException("step: all " + config.steps() + " steps are done");
        }
        int next = step + 1;
        long start = System.nanoTime();
        int micro = config.microBatches();
        model.discardGradients();
        Shares train = new Shares(Split.TRAIN, dataPosition, micro);
        float[] aux = new float[micro];
        int[][] counts = new int[model.config().moeLayerCount()][model.config().experts()];
        float[] losses = pipeline.train(micro, train.size, config.seq(), train, 1f / micro, (i, slot) -> {
            aux[i] = model.auxLoss(slot);
            addCounts(counts, model.expertCounts(slot));
        });
        dataPosition += config.batch();
        if (placement != null) {
            placement.reduceReplicaGradients();
        }
        sync.allReduce();
        sumTiedEmbedding();
        double gradNorm = gradientNorm();
        double[] sums = worldSums(lossShare(losses), auxShare(aux));
        sumOverWorld(counts);
        if (!Double.isFinite(sums[0]) || !Double.isFinite(gradNorm)) {
            throw new IllegalStateException("step " + next + ": the training diverged (loss " + sums[0]
                    + ", gradient norm " + gradNorm + "); try a lower --lr or --clip");
        }
        float lr = schedule.at(next);
        try (var t = timer.start("adamw")) {
            optimizer.step(lr, next, clipScale(gradNorm), workingCopies());
        }
        step = next;
        PlacementController.Change change = placement == null ? PlacementController.Change.NONE
                : placement.afterStep(step, counts);
        double seconds = (System.nanoTime() - start) / 1e9;
        double valLoss = config.evaluatesAt(step) ? evaluate() : Double.NaN;
        StepMetrics m = new StepMetrics(step, sums[0], valLoss, (double) config.batch() * config.seq() / seconds,
                sums[1], lr, gradNorm, counts, change.layers(), change.slots(), precision.precision().label());
        history.add(m);
        return m;
    }

    /**
     * Mean loss over the first evalBatches held-out micro-batches (the same sequences at every
     * evaluation); on a single device also counts which sources' tokens each expert received.
     */
    public double evaluate() {
        Shares eval = new Shares(Split.VALIDATION, 0, config.evalBatches());
        long[][][] sources = !model.isSingleDevice() || corpus.sourceCount() == 0 ? null
                : new long[model.moeLayerCount()][model.config().experts()][corpus.sourceCount()];
        float[] losses = pipeline.evaluate(config.evalBatches(), eval.size, config.seq(), eval, (i, slot) -> {
            if (sources != null) {
                countSources(eval.batches[i], sources);
            }
        });
        expertSourceCounts = sources;
        return worldSums(lossShare(losses))[0];
    }

    /** counts[layer][expert][source] += the (token, k) slots of the last forward (slot 0). */
    private void countSources(Batch b, long[][][] counts) {
        for (int l = 0; l < counts.length; l++) {
            int[] ids = model.routedExperts(l);
            int k = ids.length / (b.batchSize() * b.seqLen());
            for (int slot = 0; slot < ids.length; slot++) {
                counts[l][ids[slot]][b.sources()[slot / k / b.seqLen()]]++;
            }
        }
    }

    /** This rank's part of the mean over micro-batches and DP ranks of the losses (last stage, one TENSOR rank). */
    private double lossShare(float[] losses) {
        if (!model.isLast() || !firstTensorRank) {
            return 0;
        }
        double sum = 0;
        for (float l : losses) {
            sum += l;
        }
        return sum / (losses.length * dp);
    }

    /** Aux losses are the same on every DP and TENSOR rank of a stage: one rank per stage adds its stage's. */
    private double auxShare(float[] aux) {
        if (dataIndex != 0 || !firstTensorRank) {
            return 0;
        }
        double sum = 0;
        for (float a : aux) {
            sum += a;
        }
        return sum / aux.length;
    }

    /** counts[stage's MoE layers] += stageCounts; only one rank per stage adds (the counts are the global micro-batch's). */
    private void addCounts(int[][] counts, int[][] stageCounts) {
        if (dataIndex != 0 || !firstTensorRank) {
            return;
        }
        for (int l = 0; l < stageCounts.length; l++) {
            int[] row = counts[model.firstMoeLayer() + l];
            for (int e = 0; e < row.length; e++) {
                row[e] += stageCounts[l][e];
            }
        }
    }

    /** Replaces counts by their sum over the world (a single device's are the world's: no copy to the host and back). */
    private void sumOverWorld(int[][] counts) {
        if (model.isSingleDevice()) {
            return;
        }
        int experts = model.config().experts();
        int[] flat = new int[counts.length * experts];
        for (int l = 0; l < counts.length; l++) {
            System.arraycopy(counts[l], 0, flat, l * experts, experts);
        }
        try (TensorScope s = TensorScope.confined(backend)) {
            Tensor t = s.allocate("expert counts", DType.I32, Math.max(1, flat.length));
            t.copyFrom(flat.length == 0 ? new int[1] : flat);
            groups.world().allReduce(t);
            int[] summed = t.toIntArray();
            for (int l = 0; l < counts.length; l++) {
                System.arraycopy(summed, l * experts, counts[l], 0, experts);
            }
        }
    }

    /**
     * Sums of the values over the world. Each double travels as two floats (its float rounding and
     * the rest), so the sum keeps about double precision. A single device has nothing to add and
     * keeps its values whole, as it always has: the two floats drop a double's last bits, and its
     * losses and norms stay bit for bit what they were.
     */
    private double[] worldSums(double... values) {
        if (model.isSingleDevice()) {
            return values;
        }
        Communicator world = groups.world();
        try (TensorScope s = TensorScope.confined(backend)) {
            Tensor t = s.allocate("sums", DType.F32, 2 * values.length);
            float[] parts = new float[2 * values.length];
            for (int i = 0; i < values.length; i++) {
                parts[2 * i] = (float) values[i];
                parts[2 * i + 1] = (float) (values[i] - parts[2 * i]);
            }
            t.copyFrom(parts);
            world.allReduce(t);
            float[] summed = t.toFloatArray();
            double[] out = new double[values.length];
            for (int i = 0; i < out.length; i++) {
                out[i] = (double) summed[2 * i] + summed[2 * i + 1];
            }
            return out;
        }
    }

    /**
     * The first and the last stage each hold a copy of a tied wte: both end with the sum of the two
     * gradients (g0 + g1 on one, g1 + g0 on the other: the same floats).
     */
    private void sumTiedEmbedding() {
        Parameter wte = model.tiedEmbedding();
        if (wte == null) {
            return;
        }
        Communicator pipelineGroup = groups.pipeline();
        int other = model.isFirst() ? pipelineGroup.size() - 1 : 0;
        try (TensorScope s = TensorScope.confined(backend)) {
            Tensor theirs = s.allocate("wte.grad of the other stage", DType.F32, wte.grad().shape());
            if (model.isFirst()) {
                pipelineGroup.send(wte.grad(), other);
                pipelineGroup.recv(theirs, other);
            } else {
                pipelineGroup.recv(theirs, other);
                pipelineGroup.send(wte.grad(), other);
            }
            backend.accumulate(theirs, wte.grad());
        }
    }

    /**
     * The model's working copies, for the optimizer step to write. In mixed precision every
     * parameter has one, and one left out would go stale without any error (the passes would
     * read it), so a parameter missing from them is refused.
     */
    private Map<Tensor, Tensor> workingCopies() {
        Map<Tensor, Tensor> copies = model.workingCopies();
        if (model.dtype() != DType.F32) {
            for (AdamW.State s : optimizer.states()) {
                if (!copies.containsKey(s.parameter().value())) {
                    throw new IllegalStateException("parameter '" + s.parameter().name() + "' has no "
                            + model.dtype() + " working copy; the optimizer step cannot keep one current");
                }
            }
        }
        return copies;
    }

    /** The global L2 norm of the gradients, every value once. */
    private double gradientNorm() {
        try (var t = timer.start("grad_norm")) {
            double sumSquares = backend.sumSquares(model.shardedParameters().stream()
                    .filter(ShardedParameter::countsInNorm).map(p -> p.parameter().grad()).toList());
            return Math.sqrt(worldSums(sumSquares)[0]);
        }
    }

    /** The factor that scales gradients of global norm {@code norm} down to clipNorm when above; else 1. */
    private float clipScale(double norm) {
        return config.clipNorm() > 0 && norm > config.clipNorm() ? (float) (config.clipNorm() / norm) : 1f;
    }

    /**
     * This rank's share of micro-batches count (from position, batch / microBatches sequences each):
     * of micro-batch i, sequences [i * micro + dataIndex * size, + size).
     */
    private final class Shares implements PipelineSchedule.MicroBatches {
        final int size;
        final Batch[] batches;

        Shares(Split split, long position, int count) {
            int micro = config.microBatchSize();
            this.size = micro / dp;
            this.batches = new Batch[count];
            if (model.isFirst() || model.isLast()) {
                for (int i = 0; i < count; i++) {
                    batches[i] = corpus.batch(split, position + (long) i * micro + (long) dataIndex * size, size);
                }
            }
        }

        @Override
        public int[] inputs(int i) {
            return batches[i].inputs();
        }

        @Override
        public int[] targets(int i) {
            return batches[i].targets();
        }
    }

    // ---- checkpoints ----

    /**
     * The checkpoint directory's store: each rank saves its own shards with their AdamW moments
     * ("step-00000012.rank-00003-of-00008.pmoe"; a single device's "rank-00000-of-00001"), and rank
     * 0 commits a step once every rank's file is durable ({@link CheckpointStore}).
     */
    public CheckpointStore checkpoints() {
        if (checkpoints == null) {
            if (config.checkpointDir() == null) {
                throw new IllegalStateException("checkpointDir: no checkpoint directory configured");
            }
            checkpoints = new CheckpointStore(config.checkpointDir(), groups.rank(), groups.plan().world(),
                    (bytes, crc) -> {
                        int[] all = gatherOverWorld((int) (bytes >>> 32), (int) bytes, crc);
                        long[][] byRank = new long[all.length / 3][];
                        for (int r = 0; r < byRank.length; r++) {
                            byRank[r] = new long[] {((long) all[3 * r] << 32) | Integer.toUnsignedLong(all[3 * r + 1]),
                                Integer.toUnsignedLong(all[3 * r + 2])};
                        }
                        return byRank;
                    });
        }
        return checkpoints;
    }

    /** Commits this rank's part of the run's state as the checkpoint of its step; returns its file. Collective. */
    public Path saveCheckpoint() {
        return checkpoints().save(snapshot());
    }

    /**
     * Continues the run from the newest committed checkpoint. Written by this plan under this
     * placement policy: each rank reads its own file of that step, checks it belongs to this
     * model, plan, rank, training configuration and data, then restores the shards, moments, step
     * and data position; under a placement policy ({@link #usePlacement} first) the policy is
     * replayed on the saved per-step expert counts, which restores its tracker, its own state and
     * the placements exactly (the placements it reaches must equal the saved ones). The run then
     * continues bitwise. Written by another plan, world or policy: {@link #resumeResharded}.
     * Collective.
     *
     * @return what changed: empty under the same plan, else {@code "plan OLD (W ranks) -> NEW (W' ranks)"}
     *         and what became of the placement
     * @throws CheckpointException when there is none, or it is truncated, corrupted or from another
     *         run; the model and optimizer are then untouched
     */
    public String resume() {
        CheckpointStore.Manifest m = CheckpointStore.newest(checkpoints().dir());
        String policy = placement == null ? null : placement.policy().name();
        if (m != null && (m.world() != groups.plan().world() || !m.index().plan().equals(planName())
                || !Objects.equals(m.index().placementPolicy(), policy))) {
            return resumeResharded(m);
        }
        Checkpoint.Loaded c = checkpoints().load();
        CheckpointStore.checkSameStep(gatherOverWorld(c.step()));
        checkStep(c.file(), c.step());
        if (placement != null) {
            List<int[][]> loads = savedLoads(c.file(), c.model(), c.step());
            placement.replay(c.step() - loads.size() + 1, loads);
        }
        c.restore(snapshot());
        model.refreshWorkingCopies();
        step = c.step();
        dataPosition = c.dataPosition();
        return "";
    }

    private String planName() {
        return model.isSingleDevice() ? CheckpointIndex.SINGLE_DEVICE : groups.plan().toString();
    }

    private void checkStep(Path file, int saved) {
        if (saved < 0 || saved > config.steps()) {
            throw new CheckpointException("checkpoint " + file + " is at step " + saved + ", outside this run's [0, "
                    + config.steps() + "]");
        }
    }

    /**
     * Resumes from a checkpoint of another plan, world size or placement policy, through its
     * manifest's logical-model index ({@link WorldCheckpoint}): every rank checks the model,
     * trajectory, data and step, replays this run's placement policy on the saved per-step expert
     * counts (its placements for this plan; without saved counts it starts from its initial
     * placement), then reads the slice of each of its parameters and of their AdamW moments from
     * whichever rank files hold it, one tensor at a time, into host buffers. Only when every rank
     * read all of its slices are they copied into the model and optimizer: a refusal on any rank
     * leaves every rank's tensors untouched. A placement replica's slot takes its expert's state;
     * a free slot keeps its values.
     */
    private String resumeResharded(CheckpointStore.Manifest manifest) {
        List<AdamW.State> states = optimizer.states();
        float[][][] read = new float[states.size()][][];
        String failure = null;
        int saved = -1;
        String replay = "";
        try (WorldCheckpoint c = WorldCheckpoint.open(checkpoints().dir())) {
            Path file = c.manifest().file();
            saved = c.manifest().step();
            checkStep(file, saved);
            checkSameRun(c);
            Map<String, String> first = c.header(0).model();
            if (placement != null) {
                List<int[][]> loads = first.containsKey(LOADS) ? savedLoads(file, first, saved) : List.of();
                placement.replay(saved - loads.size() + 1, loads);
                replay = "; placement " + placement.policy().name() + (loads.isEmpty()
                        ? " starts from its initial placement (the checkpoint recorded no expert counts)"
                        : " replayed on the saved expert counts for this plan");
            }
            readShards(c, CheckpointShards.of(model), model.isSingleDevice(), read);
        } catch (CheckpointException e) {
            failure = e.getMessage();
        }
        int[] outcome = gatherOverWorld(failure == null ? 1 : 0, saved);
        if (failure != null) {
            throw new CheckpointException(failure);
        }
        for (int r = 0; r < outcome.length / 2; r++) {
            if (outcome[2 * r] == 0) {
                throw new CheckpointException("rank " + r + " could not read its slices of the checkpoint in "
                        + checkpoints().dir() + " (see its error); nothing was loaded");
            }
        }
        int[] steps = new int[outcome.length / 2];
        Arrays.setAll(steps, r -> outcome[2 * r + 1]);
        CheckpointStore.checkSameStep(steps);
        for (int i = 0; i < states.size(); i++) {
            if (read[i] != null) {
                Tensor[] targets = {states.get(i).parameter().value(), states.get(i).m(), states.get(i).v()};
                for (int r = 0; r < targets.length; r++) {
                    targets[r].copyFrom(read[i][r]);
                }
            }
        }
        // a bf16 model's forward reads the working copies: round them from the masters just read
        model.refreshWorkingCopies();
        step = saved;
        dataPosition = manifest.index().dataPosition();
        return "plan " + layout(manifest.index().plan(), manifest.world()) + " -> "
                + layout(planName(), groups.plan().world()) + ", each rank reading its slices through the manifest"
                + replay;
    }

    private static String layout(String plan, int world) {
        return plan + " (" + world + (world == 1 ? " rank)" : " ranks)");
    }

    /** The checkpoint's model, trajectory and data are this run's; refuses it naming every difference. */
    private void checkSameRun(WorldCheckpoint c) {
        List<String> problems = new ArrayList<>();
        if (!c.modelConfig().equals(model.config())) {
            problems.add("model " + c.modelConfig() + " in the checkpoint, " + model.config() + " here");
        }
        Checkpoint.Loaded.compare("training", c.index().training(), config.toMap(), TrainingConfig.TRAJECTORY_FIELDS,
                problems);
        if (!c.index().data().equals(corpus.describe())) {
            problems.add("data '" + c.index().data() + "' in the checkpoint, '" + corpus.describe() + "' here");
        }
        if (!problems.isEmpty()) {
            throw new CheckpointException("checkpoint " + c.manifest().file() + " does not match this run: "
                    + String.join("; ", problems));
        }
    }

    /**
     * Reads into {@code read[i]} the value, m and v of shard i's slice (null for a free slot),
     * after checking that the checkpoint holds every tensor needed, of its full shape (and, for a
     * model held whole, no other).
     */
    private static void readShards(WorldCheckpoint c, List<Checkpoint.Shard> shards, boolean wholeModel,
            float[][][] read) {
        InitialWeights.check(c.values(), shards, wholeModel);
        for (int i = 0; i < shards.size(); i++) {
            Checkpoint.Shard s = shards.get(i);
            if (s.tensor() != null) {
                CheckpointIndex.LogicalTensor t = c.tensor(s.tensor());
                read[i] = Checkpoint.ROLES.stream().map(role -> c.read(t, role, s.slice())).toArray(float[][]::new);
            }
        }
    }

    /** Every rank's values, concatenated in rank order (each rank passes as many). Collective. */
    private int[] gatherOverWorld(int... values) {
        Communicator world = groups.world();
        try (TensorScope s = TensorScope.confined(backend)) {
            Tensor t = s.allocate("gathered", DType.I32, world.size() * values.length);
            int[] mine = new int[world.size() * values.length];
            System.arraycopy(values, 0, mine, world.rank() * values.length, values.length);
            t.copyFrom(mine);
            world.allReduce(t); // zeros elsewhere: the sum is the concatenation
            return t.toIntArray();
        }
    }

    /**
     * What this rank's file records of the model: a single device its configuration's fields; a
     * rank of a plan the configuration, the plan, its rank and, under a placement policy, the
     * policy, every layer's placement and the per-step counts.
     */
    private Checkpoint.Snapshot snapshot() {
        Map<String, String> shard;
        if (model.isSingleDevice()) {
            shard = RecordFields.of(model.config());
        } else {
            shard = new LinkedHashMap<>();
            shard.put("model", model.config().toString());
            shard.put("plan", groups.plan().toString());
            shard.put("rank", Integer.toString(groups.rank()));
            if (placement != null) {
                shard.put("placement policy", placement.policy().name());
                List<ExpertPlacement> placements = placement.placements();
                for (int l = 0; l < placements.size(); l++) {
                    shard.put("placement " + l, placements.get(l).toString());
                }
                shard.put(LOADS, encodeLoads(placement.loads()));
            }
        }
        return new Checkpoint.Snapshot(step, dataPosition, shard, config.toMap(), corpus.describe(), optimizer.states(),
                CheckpointShards.of(model));
    }

    /** Per-step world expert counts in a checkpoint: steps ';', layers '|', experts ','. */
    private static final String LOADS = "placement loads";

    private static String encodeLoads(List<int[][]> loads) {
        StringJoiner steps = new StringJoiner(";");
        for (int[][] step : loads) {
            StringJoiner layers = new StringJoiner("|");
            for (int[] layer : step) {
                StringJoiner experts = new StringJoiner(",");
                for (int c : layer) {
                    experts.add(Integer.toString(c));
                }
                layers.add(experts.toString());
            }
            steps.add(layers.toString());
        }
        return steps.toString();
    }

    /**
     * The saved run's per-step counts, each of this model's shape: one entry per step since its
     * policy started counting (the first step, or the step it was resumed at under another plan).
     */
    private List<int[][]> savedLoads(Path file, Map<String, String> saved, int savedStep) {
        String text = saved.get(LOADS);
        if (text == null) {
            throw new CheckpointException("checkpoint " + file + " was saved without a placement policy; "
                    + "this run uses --placement " + placement.policy().name());
        }
        int layers = model.config().moeLayerCount();
        int experts = model.config().experts();
        List<int[][]> loads = new ArrayList<>();
        for (String step : text.isEmpty() ? new String[0] : text.split(";", -1)) {
            int[][] counts = Arrays.stream(step.split("\\|", -1))
                    .map(row -> Arrays.stream(row.split(",", -1)).mapToInt(Integer::parseInt).toArray())
                    .toArray(int[][]::new);
            if (counts.length != layers || Arrays.stream(counts).anyMatch(row -> row.length != experts)) {
                throw new CheckpointException("checkpoint " + file + " has expert counts of step "
                        + (loads.size() + 1) + " that are not " + layers + " MoE layers of " + experts + " experts");
            }
            loads.add(counts);
        }
        if (loads.size() > savedStep) {
            throw new CheckpointException("checkpoint " + file + " is at step " + savedStep + " but holds "
                    + "expert counts of " + loads.size() + " steps");
        }
        return loads;
    }

    /** Frees the optimizer state and the buffers and detaches the timer; the model stays open (it is the caller's). */
    @Override
    public void close() {
        model.setTimer(null);
        optimizer.close();
        sync.close();
    }
}
