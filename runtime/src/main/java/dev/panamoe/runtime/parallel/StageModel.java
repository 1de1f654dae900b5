package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.model.BlockOps;
import dev.panamoe.runtime.model.BlockOps.Block;
import dev.panamoe.runtime.model.BlockOps.BlockActivations;
import dev.panamoe.runtime.model.BlockOps.BlockGradients;
import dev.panamoe.runtime.model.BlockOps.HeadActivations;
import dev.panamoe.runtime.model.BlockOps.Linear;
import dev.panamoe.runtime.model.BlockOps.NormWeights;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.model.Norm;
import dev.panamoe.runtime.model.ParameterInit;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.RankLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The part of a {@link GptMoeModel} one rank of a parallel run holds and computes: the blocks of
 * its pipeline stage ({@code [stage * L / pp, (stage + 1) * L / pp)}), the embedding on the first
 * stage, the final norm, LM head and loss on the last, every block's weights sharded over the
 * TENSOR group as in Megatron-LM:
 * <pre>
 *   attention:  qkv column-parallel (this rank's heads of q, k and v) -> attention over those heads
 *               -> proj row-parallel -> all-reduce (g) -> + bias
 *   dense FFN:  fc column-parallel -> GeLU -> proj row-parallel -> all-reduce (g) -> + bias
 *   MoE FFN:    {@link MoELayer} (built by {@link MoELayers}): experts over EXPERT, replicated over EXPERT_DATA, expert
 *               TP over TENSOR; router statistics over DATA (the aux loss of the global micro-batch)
 * </pre>
 * The residual stream, the norms, the embeddings and the head are replicated over the TENSOR
 * group; the input of each column-parallel layer is the same on every rank in forward and its
 * gradient is all-reduced in backward (Megatron's f). The residual stream and its gradient are
 * then the same on every rank of the group, and so are the gradients of the replicated
 * parameters: they need no reduction over TENSOR.
 *
 * <p>Tied embeddings with pp > 1: the first and the last stage both hold "wte" (initialised
 * alike); the trainer sums their gradients before the optimizer step ({@link #tiedEmbedding()}),
 * as Megatron does, so the model stays the single-device one.
 *
 * <p>Every parameter is initialised by {@link ParameterInit} under its single-device name, then
 * cut to this rank's shard ({@link ShardedParameter#slice()}): a parallel run starts from exactly
 * the single-device values. Each micro-batch in flight (1F1B) keeps its activations in a slot; the
 * gradient buffers are shared, since one backward runs at a time.
 */
public final class StageModel implements AutoCloseable {

    /**
     * A parameter of this rank: the slice it holds of the full tensor of the same name, the group
     * over which its gradient is summed (its replicas holding other data; null when alone), and
     * whether this rank counts it in the global gradient norm (one replica of each value does).
     */
    public record ShardedParameter(Parameter parameter, int[] fullShape, TensorSlice slice, Communicator gradientGroup,
            boolean countsInNorm) {
        public String name() {
            return parameter.name();
        }
    }

    private final Backend backend;
    private final GptMoeConfig config;
    private final long seed;
    private final Communicator tensor;
    private final Communicator data;
    private final Communicator expertData;
    private final int tp;
    private final int stage;
    private final int stages;
    /** The one replica of the data-parallel (and, for replicated values, tensor-parallel) copies that counts in the norm. */
    private final boolean firstDataReplica;
    private final boolean firstTensorRank;
    private final boolean firstExpertReplica;
    private final TensorScope params;
    private final List<ShardedParameter> parameters = new ArrayList<>();
    private final Parameter wte;
    private final Parameter wpe;
    private final Block<MoELayer>[] blocks;
    private final List<MoELayer> moeLayers = new ArrayList<>();
    private final NormWeights lnf;
    private final Parameter head;
    private final BlockOps ops;

    private Slot[] slots;
    private TensorScope gradScope;
    private BlockGradients grads;

    /** This rank's stage of the model with the given seed; the plan must fit the model (checked). */
    public StageModel(Backend backend, GptMoeConfig config, long seed, ProcessGroups groups) {
        this(backend, config, seed, groups, null);
    }

    /**
     * The same with the experts of MoE layer i (model-wide) under placements.get(i) — e.g. a
     * placement policy's initial ones, with free slots for replicas — or the identity when null.
     * Every slot is a parameter (a free one holds zeros); a slot not holding its expert's first
     * copy is named "experts.slotP.w1" (P its physical slot).
     */
    public StageModel(Backend backend, GptMoeConfig config, long seed, ProcessGroups groups,
            List<ExpertPlacement> placements) {
        groups.plan().validate(config.shape());
        this.backend = backend;
        this.config = config;
        this.seed = seed;
        this.tensor = groups.tensor();
        this.data = groups.data();
        this.expertData = groups.expertData();
        this.tp = groups.plan().tp();
        RankLayout.Coordinates at = groups.coordinates();
        this.stage = at.stage();
        this.stages = groups.plan().pp();
        this.firstDataReplica = at.ep() == 0 && at.edp() == 0;
        this.firstExpertReplica = at.edp() == 0;
        this.firstTensorRank = at.tp() == 0;
        this.params = TensorScope.shared(backend);
        this.ops = new BlockOps(backend, config.heads() / tp, this::tensorAllReduce);
        int c = config.hidden();
        int t = at.tp();
        boolean holdsWte = isFirst() || isLast() && config.tiedEmbeddings();
        // the last stage's copy of a tied wte is a replica of the first stage's: it does not count twice
        this.wte = holdsWte ? parameter("wte", TensorSlice.WHOLE, isFirst(), config.vocab(), c) : null;
        this.wpe = isFirst() ? parameter("wpe", TensorSlice.WHOLE, true, config.maxSeq(), c) : null;
        int perStage = config.layers() / stages;
        @SuppressWarnings("unchecked")
        Block<MoELayer>[] blocks = new Block[perStage];
        this.blocks = blocks;
        for (int i = 0; i < perStage; i++) {
            int l = stage * perStage + i;
            String p = "blocks." + l + ".";
            NormWeights ln1 = norm(p + "ln1");
            Linear qkv = linear(p + "attn.qkv", TensorSlice.qkvColumns(t, tp), c, 3 * c);
            Linear attnProj = linear(p + "attn.proj", TensorSlice.rows(t, tp), c, c);
            NormWeights ln2 = norm(p + "ln2");
            if (config.isMoeBlock(l)) {
                ExpertPlacement placement = placements == null
                        ? ExpertPlacement.identity(config.experts(), groups.plan().ep(), 0)
                        : placements.get(firstMoeLayer() + moeLayers.size());
                MoELayer moe = moeLayer(p + "moe.", groups, t, placement);
                moeLayers.add(moe);
                blocks[i] = new Block<>(ln1, qkv, attnProj, ln2, null, null, moe);
            } else {
                Linear fc = linear(p + "mlp.fc", TensorSlice.columns(t, tp), c, config.denseFfn());
                Linear fcProj = linear(p + "mlp.proj", TensorSlice.rows(t, tp), config.denseFfn(), c);
                blocks[i] = new Block<>(ln1, qkv, attnProj, ln2, fc, fcProj, null);
            }
        }
        this.lnf = isLast() ? norm("lnf") : null;
        this.head = !isLast() ? null
                : config.tiedEmbeddings() ? wte : parameter("head.weight", TensorSlice.WHOLE, true, config.vocab(), c);
    }

    public GptMoeConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    public boolean isFirst() {
        return stage == 0;
    }

    public boolean isLast() {
        return stage == stages - 1;
    }

    /** This rank's parameters: embeddings (first stage), blocks in order, final norm and head (last stage). */
    public List<ShardedParameter> parameters() {
        return Collections.unmodifiableList(parameters);
    }

    /** The copy of a tied wte that another stage also holds (pp > 1), whose gradients must be summed; else null. */
    public Parameter tiedEmbedding() {
        return config.tiedEmbeddings() && stages > 1 && wte != null ? wte : null;
    }

    public void zeroGrad() {
        for (ShardedParameter p : parameters) {
            p.parameter().zeroGrad();
        }
    }

    public int moeLayerCount() {
        return moeLayers.size();
    }

    /** This stage's MoE layers, in model order (the placement controller migrates their experts). */
    public List<MoELayer> moeLayers() {
        return Collections.unmodifiableList(moeLayers);
    }

    /** The model-wide index of this stage's first MoE layer (the MoE layers of the earlier stages come before). */
    public int firstMoeLayer() {
        int before = 0;
        for (int l = 0; l < stage * blocks.length; l++) {
            before += config.isMoeBlock(l) ? 1 : 0;
        }
        return before;
    }

    // ---- parameters ----

    /**
     * The block's MoE layer, initialised from the full single-device values; its gate is
     * replicated like a dense weight, each expert's W1 is cut by columns and W2 by rows over the
     * TENSOR group (as {@link ExpertShards} does) and summed over the EXPERT_DATA group only.
     */
    private MoELayer moeLayer(String prefix, ProcessGroups groups, int t, ExpertPlacement placement) {
        MoELayer.Config moeConfig = config.moeConfig();
        MoELayer moe = MoELayers.create(backend, moeConfig, groups, placement,
                (name, shape) -> ParameterInit.values(config, seed, prefix + name, shape[0] * shape[1]));
        Parameter gate = moe.router().weight();
        parameters.add(new ShardedParameter(new Parameter(prefix + MoELayers.GATE, gate.value(), gate.grad()),
                gate.value().shape(), TensorSlice.WHOLE, data.size() > 1 ? data : null,
                firstDataReplica && firstTensorRank));
        int ep = groups.expert().rank();
        for (int l = 0; l < placement.slotsPerDevice(); l++) {
            int slot = ep * placement.slotsPerDevice() + l;
            int e = placement.expertAt(slot);
            boolean owner = e != ExpertPlacement.FREE && placement.slotsOf(e)[0] == slot;
            for (Parameter expert : moe.slotParameters(l)) {
                String weight = expert.name().substring(expert.name().lastIndexOf('.')); // ".w1" or ".w2"
                addExpert(prefix + (owner ? expert.name() : "experts.slot" + slot + weight), expert, moeConfig, t);
            }
        }
        return moe;
    }

    /** A slot's w1 or w2 under name: W1 cut by columns, W2 by rows over TENSOR, summed over EXPERT_DATA. */
    private void addExpert(String name, Parameter expert, MoELayer.Config moeConfig, int t) {
        int ffn = moeConfig.ffn();
        int halves = moeConfig.activation().inputWidth(ffn) / ffn;
        boolean w1 = expert.name().endsWith(".w1");
        int[] full = w1 ? new int[] {config.hidden(), moeConfig.activation().inputWidth(ffn)}
                : new int[] {ffn, config.hidden()};
        TensorSlice slice = w1 ? new TensorSlice(TensorSlice.Kind.COLUMNS, halves, t, tp) : TensorSlice.rows(t, tp);
        parameters.add(new ShardedParameter(new Parameter(name, expert.value(), expert.grad()), full, slice,
                expertData.size() > 1 ? expertData : null, firstExpertReplica));
    }

    private Linear linear(String name, TensorSlice weightSlice, int in, int out) {
        // a column-parallel bias is cut like the weight's columns; a row-parallel one is added after the all-reduce
        TensorSlice biasSlice = weightSlice.kind() == TensorSlice.Kind.COLUMNS ? weightSlice : TensorSlice.WHOLE;
        return new Linear(parameter(name + ".weight", weightSlice, true, in, out),
                parameter(name + ".bias", biasSlice, true, out));
    }

    private NormWeights norm(String name) {
        Parameter weight = parameter(name + ".weight", TensorSlice.WHOLE, true, config.hidden());
        Parameter bias = config.norm() == Norm.LAYER
                ? parameter(name + ".bias", TensorSlice.WHOLE, true, config.hidden()) : null;
        return new NormWeights(weight, bias);
    }

    /** Allocates this rank's slice of the parameter and initialises it from the full tensor's initial values. */
    private Parameter parameter(String name, TensorSlice slice, boolean counts, int... fullShape) {
        Parameter p = Parameter.allocate(params, name, slice.shape(fullShape));
        add(p, slice, counts, fullShape);
        return p;
    }

    private void add(Parameter p, TensorSlice slice, boolean counts, int[] fullShape) {
        int numel = Math.toIntExact(java.util.Arrays.stream(fullShape).asLongStream().reduce(1, (a, b) -> a * b));
        p.value().copyFrom(slice.of(ParameterInit.values(config, seed, p.name(), numel), fullShape));
        boolean replicatedOverTensor = slice.kind() == TensorSlice.Kind.WHOLE;
        boolean countsInNorm = counts && firstDataReplica && (firstTensorRank || !replicatedOverTensor);
        parameters.add(new ShardedParameter(p, fullShape, slice, data.size() > 1 ? data : null, countsInNorm));
    }

    // ---- activations ----

    /**
     * Sizes the activations for micro-batches of batch x seq tokens, slotCount of them in flight;
     * keeps the buffers while they are of that size and at least that many.
     */
    public void prepare(int batch, int seq, int slotCount) {
        if (slots != null && slots.length >= slotCount && slots[0].batch == batch && slots[0].seq == seq) {
            return;
        }
        closeActivations();
        slots = new Slot[slotCount];
        for (int i = 0; i < slotCount; i++) {
            slots[i] = new Slot(batch, seq);
        }
        gradScope = TensorScope.shared(backend);
        grads = new BlockGradients(gradScope, config, batch * seq, tp, isLast());
    }

    /** Where a stage after the first receives slot's input (the previous stage's output) [batch * seq, C]. */
    public Tensor input(int slot) {
        return slots[slot].input;
    }

    /** The stage's output of slot's last forward [batch * seq, C], to send to the next stage. */
    public Tensor output(int slot) {
        Slot s = slots[slot];
        return s.layers[blocks.length - 1].out();
    }

    /**
     * The gradient of the residual stream [batch * seq, C]: before {@link #backward} on a stage
     * before the last, d loss / d (this stage's output), received from the next stage; after it,
     * d loss / d (this stage's input), to send to the previous stage.
     */
    public Tensor residualGradient() {
        return grads.dResidual();
    }

    // ---- forward ----

    /**
     * Forward of one micro-batch in slot: from inputs ([batch, seq] ids) on the first stage, from
     * {@link #input(int)} on the others. Returns the mean cross-entropy over the targets that are
     * not -1 on the last stage, NaN on the others.
     */
    public float forward(int slot, int[] inputs, int[] targets) {
        Slot s = slots[slot];
        if (isFirst()) {
            s.ids.copyFrom(inputs);
            backend.embeddingForward(s.ids, wte.value(), wpe.value(), s.input);
        }
        Tensor x = s.input;
        for (int i = 0; i < blocks.length; i++) {
            MoELayer moe = blocks[i].moe();
            MoELayer.Workspace ws = moe == null ? null : s.moe[moeIndex(moe)];
            x = ops.blockForward(blocks[i], s.layers[i], x, moe == null ? null : in -> moe.forward(in, ws));
        }
        if (!isLast()) {
            return Float.NaN;
        }
        s.head.setTargets(targets);
        return ops.headForward(lnf, head, x, s.head);
    }

    private void tensorAllReduce(Tensor t) {
        if (tp > 1) {
            tensor.allReduce(t);
        }
    }

    /**
     * Aux and z losses of slot's last forward, summed over this stage's MoE layers (already
     * scaled): those of the global micro-batch, the same on every rank of the stage.
     */
    public float auxLoss(int slot) {
        float sum = 0;
        for (MoELayer.Workspace ws : slots[slot].moe) {
            sum += ws.auxLoss() + ws.zLoss();
        }
        return sum;
    }

    /** [stage's MoE layer][expert]: the (token, k) slots of the global micro-batch routed in slot's last forward. */
    public int[][] expertCounts(int slot) {
        MoELayer.Workspace[] ws = slots[slot].moe;
        int[][] counts = new int[ws.length][];
        for (int i = 0; i < ws.length; i++) {
            counts[i] = ws[i].globalRoutedCounts();
        }
        return counts;
    }

    // ---- backward ----

    /**
     * Backward of slot's forward, accumulating this rank's part of d(gradScale * (loss + aux
     * losses)) / d(parameters) into the gradients, where loss is the mean over the global
     * micro-batch — this rank's mean over its share weighs 1 / dp — and the aux losses are the
     * global micro-batch's: summed over the DATA group, the gradients are those of one device.
     * Starts from the loss on the last stage, from {@link #residualGradient()} (the next
     * stage's) on the others; leaves d / d(stage input) in residualGradient().
     */
    public void backward(int slot, float gradScale) {
        Slot s = slots[slot];
        if (isLast()) {
            int kept = s.head.keptTargets();
            float meanScale = kept == 0 ? 0f : gradScale / ((float) kept * data.size());
            ops.headBackward(lnf, head, output(slot), s.head, meanScale, grads);
        }
        for (int i = blocks.length - 1; i >= 0; i--) {
            Tensor residual = i == 0 ? s.input : s.layers[i - 1].out();
            MoELayer moe = blocks[i].moe();
            MoELayer.Workspace ws = moe == null ? null : s.moe[moeIndex(moe)];
            ops.blockBackward(blocks[i], s.layers[i], residual, grads,
                    moe == null ? null : d -> moe.backward(d, gradScale, ws));
        }
        if (isFirst()) {
            backend.embeddingBackward(s.ids, grads.dResidual(), wte.grad(), wpe.grad());
        }
    }

    private int moeIndex(MoELayer moe) {
        return moeLayers.indexOf(moe);
    }

    // ---- buffers ----

    private void closeActivations() {
        if (slots != null) {
            for (Slot s : slots) {
                s.close();
            }
            gradScope.close();
        }
        slots = null;
        gradScope = null;
        grads = null;
    }

    /** Frees the parameters, the MoE layers and the activations. */
    @Override
    public void close() {
        closeActivations();
        moeLayers.forEach(MoELayer::close);
        params.close();
    }

    /** The activations of one micro-batch in flight. */
    private final class Slot implements AutoCloseable {
        final int batch;
        final int seq;
        final TensorScope scope;
        final Tensor ids;
        /** The embedding's output on the first stage, the previous stage's output on the others. */
        final Tensor input;
        final BlockActivations[] layers;
        final MoELayer.Workspace[] moe;
        /** Last stage only. */
        final HeadActivations head;

        Slot(int batch, int seq) {
            this.batch = batch;
            this.seq = seq;
            this.scope = TensorScope.shared(backend);
            int n = batch * seq;
            int c = config.hidden();
            ids = isFirst() ? scope.allocate("ids", DType.I32, batch, seq) : null;
            input = scope.allocate("input", DType.F32, n, c);
            layers = new BlockActivations[blocks.length];
            for (int i = 0; i < layers.length; i++) {
                layers[i] = new BlockActivations(scope, config, "", batch, seq, tp, blocks[i].moe() != null);
            }
            moe = new MoELayer.Workspace[moeLayers.size()];
            for (int i = 0; i < moe.length; i++) {
                moe[i] = moeLayers.get(i).newWorkspace();
            }
            head = isLast() ? new HeadActivations(scope, config, n) : null;
        }

        @Override
        public void close() {
            for (MoELayer.Workspace ws : moe) {
                ws.close();
            }
            scope.close();
        }
    }
}
