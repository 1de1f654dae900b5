package dev.panamoe.runtime.parallel;

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
import dev.panamoe.runtime.parallel.StageModel.ShardedParameter;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.AdamW;
import dev.panamoe.runtime.train.Checkpoint;
import dev.panamoe.runtime.train.CheckpointException;
import dev.panamoe.runtime.train.CheckpointStore;
import dev.panamoe.runtime.train.LrSchedule;
import dev.panamoe.runtime.train.RunLoop;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PlacementPolicy;
import dev.panamoe.strategy.plan.RankLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;
import java.util.function.Consumer;

/**
 * One rank's part of a parallel training run; every rank of the world runs one, in step. An
 * optimizer step is the single-device {@link Trainer}'s on the same global batch:
 * <pre>
 *   micro-batch i of the step = the trainer's micro-batch i (batch / microBatches sequences);
 *     DP rank d (of dp = ep * edp) trains on its share d of it: batch / microBatches / dp sequences
 *   1F1B through the stages ({@link PipelineSchedule}), each rank backpropagating 1 / microBatches of
 *     its share of the global micro-batch's mean loss and aux losses ({@link StageModel#backward})
 *   gradients summed over their replicas (DATA for dense weights, EXPERT_DATA for expert shards;
 *     bucketed, {@link GradientSync}) and between the two copies of a tied wte
 *   global gradient norm over every value once (replicas counted on one rank), clipped like the trainer
 *   AdamW on this rank's shards, at the trainer's learning rate
 * </pre>
 * The step's metrics are the same on every rank; only world rank 0 writes the metrics file.
 * The mean loss of a DP share equals its share of the global mean when every share counts the
 * same number of targets — always so with the corpora, whose targets are all real tokens.
 */
public final class ParallelTrainer implements AutoCloseable {
    /** Gradient values per all-reduce call. */
    static final int BUCKET_ELEMENTS = 1 << 20;

    private final StageModel model;
    private final ProcessGroups groups;
    private final Corpus corpus;
    private final TrainingConfig config;
    private final Backend backend;
    private final PipelineSchedule schedule;
    private final GradientSync sync;
    private final LrSchedule lr;
    private final AdamW optimizer;
    private final int dp;
    private final int dataIndex;
    private final boolean firstTensorRank;
    private final List<StepMetrics> history = new ArrayList<>();
    private PlacementController placement;
    private int step;
    private long dataPosition;
    private CheckpointStore checkpoints;

    public ParallelTrainer(StageModel model, ProcessGroups groups, Corpus corpus, TrainingConfig config) {
        validate(groups.plan(), model.config(), config);
        this.dp = groups.plan().dataParallel();
        if (corpus.seqLen() != config.seq() || config.seq() > model.config().maxSeq()) {
            throw new IllegalArgumentException("seq: the training config has " + config.seq() + ", the corpus "
                    + corpus.seqLen() + ", the model's maxSeq is " + model.config().maxSeq());
        }
        this.model = model;
        this.groups = groups;
        this.corpus = corpus;
        this.config = config;
        this.backend = model.backend();
        this.schedule = new PipelineSchedule(model, groups.pipeline());
        List<Parameter> own = model.parameters().stream().map(ShardedParameter::parameter).toList();
        this.sync = new GradientSync(backend, model.parameters(), BUCKET_ELEMENTS);
        this.lr = LrSchedule.of(config);
        this.optimizer = AdamW.of(backend, own, config);
        RankLayout layout = groups.layout();
        this.dataIndex = layout.dataIndex(groups.rank());
        this.firstTensorRank = groups.coordinates().tp() == 0;
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

    public StageModel model() {
        return model;
    }

    public AdamW optimizer() {
        return optimizer;
    }

    /**
     * Trains under policy's expert placements from now on: its initial placement, then after each
     * step its decisions, applied by exact live migration. Collective: every rank, before its first step.
     */
    public PlacementController usePlacement(PlacementPolicy policy) {
        placement = new PlacementController(policy, model, groups, optimizer);
        return placement;
    }

    public int step() {
        return step;
    }

    public List<StepMetrics> history() {
        return Collections.unmodifiableList(history);
    }

    /**
     * Runs steps until {@link TrainingConfig#stopAt()}: world rank 0 writes the metrics file
     * (continued on a resumed run), every rank its checkpoint where configured.
     */
    public List<StepMetrics> run(Consumer<StepMetrics> onStep) {
        Path file = groups.rank() == 0 ? config.metrics() : null;
        return RunLoop.run(config, file, this::step, this::trainStep, this::saveCheckpoint, onStep);
    }

    // ---- checkpoints ----

    /**
     * The checkpoint directory's store: each rank saves its own shards with their AdamW moments
     * ("step-00000012.rank-00003-of-00008.pmoe"), and rank 0 commits a step once every rank's file
     * is durable ({@link CheckpointStore}).
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

    /** Saves this rank's part of the checkpoint of the current step. Collective. */
    public void saveCheckpoint() {
        checkpoints().save(snapshot());
    }

    /**
     * Continues the run from the newest committed checkpoint: each rank reads its own file of that
     * step, checks it belongs to this model, plan, rank, training configuration and data, then
     * restores the shards, moments, step and data position. The ranks then check that they all
     * resumed the same step. Under a placement policy ({@link #usePlacement} first), the policy is
     * replayed on the saved per-step expert counts, which restores its tracker, its own state and
     * the placements exactly; the placements it reaches must equal the saved ones (same policy,
     * same slots), or the checkpoint is refused. Collective.
     */
    public void resume() {
        Checkpoint.Loaded c = checkpoints().load();
        CheckpointStore.checkSameStep(gatherOverWorld(c.step()));
        if (c.step() < 0 || c.step() > config.steps()) {
            throw new CheckpointException("checkpoint " + c.file() + " is at step " + c.step()
                    + ", outside this run's [0, " + config.steps() + "]");
        }
        if (placement != null) {
            placement.replay(savedLoads(c));
        }
        c.restore(snapshot());
        step = c.step();
        dataPosition = c.dataPosition();
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

    private Checkpoint.Snapshot snapshot() {
        Map<String, String> shard = new LinkedHashMap<>();
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
        return new Checkpoint.Snapshot(step, dataPosition, shard, config.toMap(), corpus.describe(), optimizer.states(),
                CheckpointShards.of(model, groups));
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

    /** The saved run's per-step counts: one entry per step done, each of this model's shape. */
    private List<int[][]> savedLoads(Checkpoint.Loaded c) {
        String text = c.model().get(LOADS);
        if (text == null) {
            throw new CheckpointException("checkpoint " + c.file() + " was saved without a placement policy; "
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
                throw new CheckpointException("checkpoint " + c.file() + " has expert counts of step "
                        + (loads.size() + 1) + " that are not " + layers + " MoE layers of " + experts + " experts");
            }
            loads.add(counts);
        }
        if (loads.size() != c.step()) {
            throw new CheckpointException("checkpoint " + c.file() + " is at step " + c.step() + " but holds "
                    + "expert counts of " + loads.size() + " steps");
        }
        return loads;
    }

    /** One optimizer step over the next global batch, with an evaluation when one is due. */
    public StepMetrics trainStep() {
        if (step >= config.steps()) {
            throw new IllegalStateException("step: all " + config.steps() + " steps are done");
        }
        int next = step + 1;
        long start = System.nanoTime();
        int micro = config.microBatches();
        model.zeroGrad();
        Shares train = new Shares(Split.TRAIN, dataPosition, micro);
        float[] aux = new float[micro];
        int[][] counts = new int[model.config().moeLayerCount()][model.config().experts()];
        float[] losses = schedule.train(micro, train.size, config.seq(), train, 1f / micro, (i, slot) -> {
            aux[i] = model.auxLoss(slot);
            addCounts(counts, model.expertCounts(slot));
        });
        dataPosition += config.batch();
        if (placement != null) {
            placement.reduceReplicaGradients();
        }
        sync.allReduce();
        sumTiedEmbedding();
        double gradNorm = clipGradients();
        double[] sums = worldSums(new double[] {lossShare(losses), auxShare(aux)});
        sumOverWorld(counts);
        if (!Double.isFinite(sums[0]) || !Double.isFinite(gradNorm)) {
            throw new IllegalStateException("step " + next + ": the training diverged (loss " + sums[0]
                    + ", gradient norm " + gradNorm + "); try a lower --lr or --clip");
        }
        float rate = lr.at(next);
        optimizer.step(rate, next);
        step = next;
        PlacementController.Change change = placement == null ? PlacementController.Change.NONE
                : placement.afterStep(step, counts);
        double seconds = (System.nanoTime() - start) / 1e9;
        double valLoss = config.evaluatesAt(step) ? evaluate() : Double.NaN;
        StepMetrics m = new StepMetrics(step, sums[0], valLoss, (double) config.batch() * config.seq() / seconds,
                sums[1], rate, gradNorm, counts, change.layers(), change.slots());
        history.add(m);
        return m;
    }

    /** Mean loss over the first evalBatches held-out micro-batches, as {@link Trainer#evaluate()}. */
    public double evaluate() {
        Shares eval = new Shares(Split.VALIDATION, 0, config.evalBatches());
        float[] losses = schedule.evaluate(config.evalBatches(), eval.size, config.seq(), eval);
        return worldSums(new double[] {lossShare(losses)})[0];
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

    /** Replaces counts by their sum over the world. */
    private void sumOverWorld(int[][] counts) {
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
     * the rest), so the sum keeps about double precision.
     */
    private double[] worldSums(double[] values) {
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
        Communicator pipeline = groups.pipeline();
        int other = model.isFirst() ? pipeline.size() - 1 : 0;
        try (TensorScope s = TensorScope.confined(backend)) {
            Tensor theirs = s.allocate("wte.grad of the other stage", DType.F32, wte.grad().shape());
            if (model.isFirst()) {
                pipeline.send(wte.grad(), other);
                pipeline.recv(theirs, other);
            } else {
                pipeline.recv(theirs, other);
                pipeline.send(wte.grad(), other);
            }
            backend.accumulate(theirs, wte.grad());
        }
    }

    /** Scales the gradients down to a global L2 norm of clipNorm when above; returns the norm before. */
    private double clipGradients() {
        double sumSquares = 0;
        for (ShardedParameter p : model.parameters()) {
            if (p.countsInNorm()) {
                sumSquares += backend.sumSquares(p.parameter().grad());
            }
        }
        double norm = Math.sqrt(worldSums(new double[] {sumSquares})[0]);
        if (config.clipNorm() > 0 && norm > config.clipNorm()) {
            float scale = (float) (config.clipNorm() / norm);
            for (ShardedParameter p : model.parameters()) {
                backend.scale(p.parameter().grad(), scale);
            }
        }
        return norm;
    }

    /**
     * This rank's share of micro-batches count (from position, batch / microBatches sequences each, as
     * the trainer's): of micro-batch i, sequences [i * micro + dataIndex * size, + size).
     */
    private final class Shares implements PipelineSchedule.MicroBatches {
        final int size;
        private final Batch[] batches;

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

    /** Frees the optimizer state and the buffers; the model stays open (it is the caller's). */
    @Override
    public void close() {
        optimizer.close();
        sync.close();
    }
}
