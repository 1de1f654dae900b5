package dev.panamoe.runtime.model;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.model.BlockOps.Block;
import dev.panamoe.runtime.model.BlockOps.BlockActivations;
import dev.panamoe.runtime.model.BlockOps.BlockGradients;
import dev.panamoe.runtime.model.BlockOps.HeadActivations;
import dev.panamoe.runtime.model.BlockOps.Linear;
import dev.panamoe.runtime.model.BlockOps.NormWeights;
import dev.panamoe.runtime.parallel.MoELayers;
import dev.panamoe.runtime.parallel.ProcessGroups;
import dev.panamoe.runtime.parallel.TensorSlice;
import dev.panamoe.runtime.report.OperatorTimer;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.RankLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiConsumer;
import java.util.function.IntFunction;

/**
 * A GPT-2 style language model whose FFNs are, every {@link GptMoeConfig#moeEvery()}-th block, a
 * Mixture of Experts — the part of it that one rank of a parallel plan holds and computes; a
 * single device is a world of one rank ({@link ProcessGroups#single()}) holding all of it. With
 * N = batch * seq tokens and C = hidden:
 * <pre>
 *   x = wte[ids] + wpe[positions]                                 [N, C]
 *   per block:  x = x + proj(attention(qkv(norm1(x))))            causal multi-head attention
 *               x = x + ffn(norm2(x))                             MoE, or linear-GeLU-linear
 *   logits = normf(x) · head^T                                    [N, vocab]; head = wte when tied
 *   loss = mean cross-entropy over the targets that are not -1
 * </pre>
 * A rank holds the blocks of its pipeline stage ({@code [stage * L / pp, (stage + 1) * L / pp)}),
 * the embedding on the first stage, the final norm, LM head and loss on the last, every block's
 * weights sharded over the TENSOR group as in Megatron-LM:
 * <pre>
 *   attention:  qkv column-parallel (this rank's heads of q, k and v) -> attention over those heads
 *               -> proj row-parallel -> all-reduce (g) -> + bias
 *   dense FFN:  fc column-parallel -> GeLU -> proj row-parallel -> all-reduce (g) -> + bias
 *   MoE FFN:    experts over EXPERT, replicated over EXPERT_DATA, expert TP over TENSOR; router
 *               statistics over DATA (the aux loss of the global micro-batch)
 * </pre>
 * The residual stream, the norms, the embeddings and the head are replicated over the TENSOR
 * group; the input of each column-parallel layer is the same on every rank in forward and its
 * gradient is all-reduced in backward (Megatron's f), so the gradients of the replicated
 * parameters need no reduction over TENSOR. Tied embeddings with pp > 1: the first and the last
 * stage both hold "wte" (initialised alike); the trainer sums their gradients before the optimizer
 * step ({@link #tiedEmbedding()}), as Megatron does.
 *
 * <p>Written in the style of llm.c: the activations of a (batch, seq) are named buffers allocated
 * once and reused while the shape stays the same, one set per micro-batch in flight (a slot, as
 * 1F1B needs); forward is the sequence of backend calls above ({@link BlockOps}) and backward runs
 * it in reverse, with one set of gradient buffers shared by all blocks. Linear weights are [in,
 * out] (as the MoE gate's), the head is [vocab, C] like wte.
 *
 * <p>Parameters are initialised as GPT-2's by {@link ParameterInit}, each from a generator seeded
 * by the model seed and the parameter's single-device name, then cut to this rank's shard
 * ({@link ShardedParameter#slice()}): a parameter's initial value does not depend on which other
 * parameters exist, so a parallel run starts from exactly the single-device values. Everything is
 * deterministic: the same seed and inputs give bitwise the same losses and gradients, for any
 * thread count.
 *
 * <p>Precision: a model built in {@link DType#BF16} trains in mixed precision as Megatron-Core's
 * bf16 does: every parameter keeps an f32 master, f32 gradient (accumulated across micro-batches)
 * and f32 moments, and the passes read a bf16 working copy of it, rounded after every write of the
 * masters (by the optimizer step, which writes {@link #workingCopies()} in its own pass, or by
 * {@link #refreshWorkingCopies()} after any other write); every activation and activation
 * gradient is bf16, including the residual stream, the logits and what crosses stage and expert
 * boundaries. What bf16 would spoil stays f32: the router (logits, softmax, top-k, aux and z
 * losses), the norms' statistics, the attention probabilities and the cross-entropy, computed in
 * f32 inside the kernels from bf16 inputs, and every sum over a TENSOR group (the ranks' partial
 * products kept in f32, summed, rounded once). An f32 model is unchanged by this.
 *
 * <p>Not thread-safe; one model per training thread.
 */
public final class GptMoeModel implements AutoCloseable {

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
    /** The MoE layers' activations and working weights: F32, or BF16 (mixed precision). */
    private final DType dtype;
    private final ProcessGroups groups;
    /** Built by the single-device constructor: owns its groups of one rank. */
    private final boolean singleDevice;
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
    /** What the passes read for the dense parameters: the masters, or their bf16 working copies. */
    private final WorkingWeights weights;
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
    /** A bf16 model's partial products [N, C] in f32, summed over the TENSOR group (tp > 1); else null. */
    private Tensor tensorSum;

    /** The whole model on a single device: a world of one rank. */
    public GptMoeModel(Backend backend, GptMoeConfig config, long seed) {
        this(backend, config, seed, DType.F32);
    }

    /** The whole model on a single device, its MoE layers in dtype (F32, or BF16 for mixed precision). */
    public GptMoeModel(Backend backend, GptMoeConfig config, long seed, DType dtype) {
        this(backend, config, seed, ProcessGroups.single(), null, dtype, true);
    }

    /** This rank's stage of the model with the given seed; the plan must fit the model (checked). */
    public GptMoeModel(Backend backend, GptMoeConfig config, long seed, ProcessGroups groups) {
        this(backend, config, seed, groups, null);
    }

    /**
     * The same with the experts of MoE layer i (model-wide) under placements.get(i) — e.g. a
     * placement policy's initial ones, with free slots for replicas — or the identity when null.
     * Every slot is a parameter (a free one holds zeros); a slot not holding its expert's first
     * copy is named "experts.slotP.w1" (P its physical slot).
     */
    public GptMoeModel(Backend backend, GptMoeConfig config, long seed, ProcessGroups groups,
            List<ExpertPlacement> placements) {
        this(backend, config, seed, groups, placements, DType.F32);
    }

    /** The same with the MoE layers in dtype (F32, or BF16 for mixed precision). */
    public GptMoeModel(Backend backend, GptMoeConfig config, long seed, ProcessGroups groups,
            List<ExpertPlacement> placements, DType dtype) {
        this(backend, config, seed, requireGroups(groups), placements, dtype, false);
    }

    private GptMoeModel(Backend backend, GptMoeConfig config, long seed, ProcessGroups groups,
            List<ExpertPlacement> placements, DType dtype, boolean singleDevice) {
        if (backend == null || config == null) {
            throw new IllegalArgumentException("backend, config: must not be null, got " + backend + ", " + config);
        }
        if (dtype != DType.F32 && dtype != DType.BF16) {
            throw new IllegalArgumentException("dtype: must be f32 or bf16, got " + dtype);
        }
        this.dtype = dtype;
        this.singleDevice = singleDevice;
        this.groups = groups;
        this.groups.plan().validate(config.shape());
        this.backend = backend;
        this.config = config;
        this.seed = seed;
        this.tensor = this.groups.tensor();
        this.data = this.groups.data();
        this.expertData = this.groups.expertData();
        this.tp = this.groups.plan().tp();
        RankLayout.Coordinates at = this.groups.coordinates();
        this.stage = at.stage();
        this.stages = this.groups.plan().pp();
        this.firstDataReplica = at.ep() == 0 && at.edp() == 0;
        this.firstExpertReplica = at.edp() == 0;
        this.firstTensorRank = at.tp() == 0;
        this.params = TensorScope.shared(backend);
        this.weights = new WorkingWeights(backend, dtype);
        this.ops = new BlockOps(backend, weights, config.heads() / tp, this::tensorSummedGemm);
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
                        ? ExpertPlacement.identity(config.experts(), this.groups.plan().ep(), 0)
                        : placements.get(firstMoeLayer() + moeLayers.size());
                MoELayer moe = moeLayer(p + "moe.", t, placement);
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
        weights.refresh();
    }

    private static ProcessGroups requireGroups(ProcessGroups groups) {
        if (groups == null) {
            throw new IllegalArgumentException("groups: must not be null (a single device is GptMoeModel(backend, "
                    + "config, seed))");
        }
        return groups;
    }

    public GptMoeConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    /** The dtype of the activations and of the weights the passes read: F32, or BF16 (mixed precision). */
    public DType dtype() {
        return dtype;
    }

    /**
     * Rounds every f32 master into its bf16 working copy (a no-op in f32): after the masters are
     * written other than by an optimizer step that writes the copies itself (a checkpoint
     * restored, weights loaded), before the next forward.
     */
    public void refreshWorkingCopies() {
        workingCopies().forEach((master, copy) -> backend.convert(master, copy));
    }

    /**
     * Every master of this rank that has a working copy (a parameter's value tensor, by
     * identity), with the copy (empty in f32): what an optimizer step writes in the same pass as
     * the masters, instead of a {@link #refreshWorkingCopies()} after it. Built on each call from
     * the layers' current parameters, so it never outlives a change of them.
     */
    public Map<Tensor, Tensor> workingCopies() {
        Map<Tensor, Tensor> copies = new IdentityHashMap<>();
        BiConsumer<Parameter, Tensor> add = (p, copy) -> copies.put(p.value(), copy);
        weights.forEachWorkingCopy(add);
        moeLayers.forEach(layer -> layer.forEachWorkingCopy(add));
        return copies;
    }

    /** The process groups of this rank (a single device's: one rank in every group). */
    public ProcessGroups groups() {
        return groups;
    }

    /**
     * Whether this is the model of a single device (built without groups) rather than a rank of a
     * plan, possibly of one rank. The two compute the same function; a single device keeps the
     * summation order it always had (its MoE layer's aux loss, the trainer's sums in double), so
     * its results stay bit for bit what they were, and a plan's stay those of its ranks.
     */
    public boolean isSingleDevice() {
        return singleDevice;
    }

    public boolean isFirst() {
        return stage == 0;
    }

    public boolean isLast() {
        return stage == stages - 1;
    }

    /** Times each operator of forward and backward under its kind ("attention", "moe.backward", ...); null = off. */
    public void setTimer(OperatorTimer timer) {
        ops.setTimer(timer);
    }

    // ---- parameters ----

    /**
     * This rank's parameters in a fixed order: wte, wpe (first stage), then per block ln1,
     * attn.qkv, attn.proj, ln2 and either mlp.fc, mlp.proj or moe.gate, moe.experts.0.w1,
     * moe.experts.0.w2, ...; then lnf and head.weight unless tied (last stage). Names are unique
     * and the single-device model's ("blocks.3.attn.qkv.weight", "blocks.1.moe.experts.5.w1");
     * each expert's tensors are its own.
     */
    public List<Parameter> parameters() {
        return parameters.stream().map(ShardedParameter::parameter).toList();
    }

    /** The same with what each is a shard of and where its gradient is summed. */
    public List<ShardedParameter> shardedParameters() {
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

    /**
     * zeroGrad for a training step, whose next calls are its backward passes: the experts'
     * gradients are then written by each MoE layer's first backward rather than zeroed first
     * ({@link MoELayer#discardGradients}); every other gradient is zeroed.
     */
    public void discardGradients() {
        Set<Tensor> layersOwn = Collections.newSetFromMap(new IdentityHashMap<>());
        for (MoELayer layer : moeLayers) {
            layer.discardGradients();
            layersOwn.add(layer.router().weight().grad());
            layer.experts().parameters().forEach(p -> layersOwn.add(p.grad()));
        }
        for (ShardedParameter p : parameters) {
            if (!layersOwn.contains(p.parameter().grad())) {
                p.parameter().zeroGrad();
            }
        }
    }

    /** This rank's MoE layers. */
    public int moeLayerCount() {
        return moeLayers.size();
    }

    /** This stage's MoE layer i (0-based, in block order). */
    public MoELayer moeLayer(int i) {
        if (i < 0 || i >= moeLayers.size()) {
            throw new IllegalArgumentException("i: MoE layer " + i + " is outside [0, " + moeLayers.size() + ")");
        }
        return moeLayers.get(i);
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

    /**
     * The MoE FFN of a block, initialised from the full single-device values; its gate is replicated
     * like a dense weight, each expert's W1 is cut by columns and W2 by rows over the TENSOR group
     * (as {@link dev.panamoe.runtime.parallel.ExpertShards} does) and summed over the EXPERT_DATA
     * group only.
     */
    private MoELayer moeLayer(String prefix, int t, ExpertPlacement placement) {
        MoELayer.Config moeConfig = config.moeConfig().toBuilder().dtype(dtype).build();
        MoELayer moe;
        if (singleDevice) {
            // the one-device layer: its aux loss is the fused loss kernel's, bit for bit what a single
            // device always computed (a rank's comes from the DATA-summed statistics)
            moe = new MoELayer(backend, moeConfig, seed);
            initialise(prefix + MoELayers.GATE, moe.router().weight());
            for (int e = 0; e < config.experts(); e++) {
                for (Parameter p : moe.slotParameters(e)) {
                    initialise(prefix + p.name(), p);
                }
            }
            moe.refreshWorkingCopies();
        } else {
            moe = MoELayers.create(backend, moeConfig, groups, placement,
                    (name, shape) -> ParameterInit.values(config, seed, prefix + name, shape[0] * shape[1]));
        }
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
        Parameter p = weights.add(Parameter.allocate(params, name, slice.shape(fullShape)));
        int numel = Math.toIntExact(Arrays.stream(fullShape).asLongStream().reduce(1, (a, b) -> a * b));
        p.value().copyFrom(slice.of(ParameterInit.values(config, seed, name, numel), fullShape));
        boolean replicatedOverTensor = slice.kind() == TensorSlice.Kind.WHOLE;
        boolean countsInNorm = counts && firstDataReplica && (firstTensorRank || !replicatedOverTensor);
        parameters.add(new ShardedParameter(p, fullShape, slice, data.size() > 1 ? data : null, countsInNorm));
        return p;
    }

    /** The value {@link ParameterInit} gives name under the model seed (a whole, unsharded parameter). */
    private void initialise(String name, Parameter p) {
        p.value().copyFrom(ParameterInit.values(config, seed, name, Math.toIntExact(p.value().numel())));
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
        grads = new BlockGradients(gradScope, config, dtype, batch * seq, tp, isLast());
        tensorSum = tp > 1 && dtype != DType.F32
                ? gradScope.allocate("tensor.sum", DType.F32, batch * seq, config.hidden()) : null;
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
     * The gradient of the residual stream [batch * seq, C]: before {@link #backward(int, float)} on
     * a stage before the last, d loss / d (this stage's output), received from the next stage;
     * after it, d loss / d (this stage's input), to send to the previous stage.
     */
    public Tensor residualGradient() {
        return grads.dResidual();
    }

    // ---- forward ----

    /**
     * Mean cross-entropy of the next-token predictions over the targets that are not -1, for a
     * model that holds every block (one stage): one micro-batch in slot 0. inputs and targets are
     * [batch, seq] row-major; inputs in [0, vocab), targets in [0, vocab) or -1;
     * {@code 1 <= seq <= maxSeq}. Keeps the activations for {@link #backward(float)}.
     */
    public float forward(int[] inputs, int[] targets, int batch, int seq) {
        if (stages > 1) {
            throw new IllegalStateException("forward: a stage of a pipeline (pp=" + stages + ") runs forward(slot, "
                    + "inputs, targets) under its schedule");
        }
        checkBatch(inputs, targets, batch, seq);
        prepare(batch, seq, 1);
        return forward(0, inputs, targets);
    }

    /**
     * Forward of one micro-batch in slot: from inputs ([batch, seq] ids) on the first stage, from
     * {@link #input(int)} on the others. Returns the mean cross-entropy over the targets that are
     * not -1 on the last stage, NaN on the others.
     */
    public float forward(int slot, int[] inputs, int[] targets) {
        Slot s = slots[slot];
        s.forwardDone = false;
        if (isFirst()) {
            s.ids.copyFrom(inputs);
            try (var t = ops.time("embedding")) {
                backend.embeddingForward(s.ids, weights.of(wte), weights.of(wpe), s.input);
            }
        }
        Tensor x = s.input;
        for (int i = 0; i < blocks.length; i++) {
            MoELayer moe = blocks[i].moe();
            MoELayer.Workspace ws = s.moe[i];
            x = ops.blockForward(blocks[i], s.layers[i], x, moe == null ? null : in -> moe.forward(in, ws));
        }
        float loss = Float.NaN;
        if (isLast()) {
            s.head.setTargets(targets);
            loss = ops.headForward(lnf, head, x, s.head);
        }
        s.forwardDone = true;
        return loss;
    }

    /**
     * c = a · op(b) summed over the TENSOR group. Each rank's partial product stays f32 until the
     * sum is done, then a bf16 c is rounded once, as one device rounds the whole product.
     */
    private void tensorSummedGemm(Tensor a, boolean transB, Tensor b, Tensor c) {
        Tensor partial = tp == 1 || c.dtype() == DType.F32 ? c : tensorSum;
        backend.gemm(false, transB, 1f, a, b, 0f, partial);
        if (tp > 1) {
            tensor.allReduce(partial);
        }
        if (partial != c) {
            backend.convert(partial, c);
        }
    }

    /** The logits [batch * seq, vocab] of the last forward in slot 0, row t of a sequence predicting its token t + 1. */
    public Tensor logits() {
        return completed("logits").head.logits;
    }

    /**
     * The logits [1, vocab] after the token at position (0-based) of one sequence whose earlier
     * positions' keys and values attention(l) holds for block l: the last row of a forward over
     * the whole prefix, for one token's work. The buffers and the MoE blocks' workspaces (null for
     * a dense block) are the caller's: the model's own keep the last forward. A single device only.
     */
    Tensor decodeStep(int token, int position, Tensor encoded, BlockActivations[] layers, MoELayer.Workspace[] workspaces,
            HeadActivations headActs, IntFunction<BlockOps.Attention> attention) {
        if (token < 0 || token >= config.vocab()) {
            throw new IllegalArgumentException("token: " + token + " is outside [0, " + config.vocab() + ")");
        }
        if (position < 0 || position >= config.maxSeq()) {
            throw new IllegalArgumentException("position: must be in [0, maxSeq=" + config.maxSeq() + "), got "
                    + position);
        }
        try (var t = ops.time("embedding")) {
            backend.add(weights.of(wte).slice(token, token + 1), weights.of(wpe).slice(position, position + 1),
                    encoded);
        }
        Tensor x = encoded;
        for (int l = 0; l < blocks.length; l++) {
            MoELayer moe = blocks[l].moe();
            MoELayer.Workspace ws = workspaces[l];
            x = ops.blockForward(blocks[l], layers[l], x, moe == null ? null : in -> moe.forward(in, ws),
                    attention.apply(l));
        }
        return ops.headLogits(lnf, head, x, headActs);
    }

    /** A workspace of each block's MoE layer (null for a dense block), for {@link #decodeStep}; the caller closes them. */
    MoELayer.Workspace[] newMoeWorkspaces() {
        if (!singleDevice) {
            throw new IllegalStateException("decoding: needs the model of a single device, got a rank of plan "
                    + groups.plan());
        }
        MoELayer.Workspace[] workspaces = new MoELayer.Workspace[blocks.length];
        for (int l = 0; l < blocks.length; l++) {
            workspaces[l] = blocks[l].moe() == null ? null : blocks[l].moe().newWorkspace();
        }
        return workspaces;
    }

    /** Sum over the MoE layers of their aux and z losses in the last forward of slot 0 (already scaled by their coefficients). */
    public float auxLoss() {
        completed("auxLoss");
        return auxLoss(0);
    }

    /**
     * Aux and z losses of slot's last forward, summed over this stage's MoE layers (already
     * scaled): those of the global micro-batch, the same on every rank of the stage.
     */
    public float auxLoss(int slot) {
        float sum = 0;
        for (MoELayer.Workspace ws : slots[slot].moe) {
            if (ws != null) {
                sum += ws.auxLoss() + ws.zLoss();
            }
        }
        return sum;
    }

    /** [moeLayer][expert]: the (token, k) slots the router sent to each expert in the last forward of slot 0. */
    public int[][] expertCounts() {
        completed("expertCounts");
        return expertCounts(0);
    }

    /** [stage's MoE layer][expert]: the (token, k) slots of the global micro-batch routed in slot's last forward. */
    public int[][] expertCounts(int slot) {
        int[][] counts = new int[moeLayers.size()][];
        int i = 0;
        for (MoELayer.Workspace ws : slots[slot].moe) {
            if (ws != null) {
                counts[i++] = ws.globalRoutedCounts();
            }
        }
        return counts;
    }

    /**
     * [token * topK + j]: the expert each token of slot 0's last forward chose j-th, in MoE layer i
     * (single device).
     */
    public int[] routedExperts(int i) {
        return oneDeviceWorkspace("routedExperts", i).topkIds().toIntArray();
    }

    /** The single-device layer's workspace of slot 0's last forward in MoE layer i. */
    MoELayer.Workspace oneDeviceWorkspace(String what, int i) {
        moeLayer(i);
        Slot s = completed(what);
        for (MoELayer.Workspace ws : s.moe) {
            if (ws != null && i-- == 0) {
                return ws;
            }
        }
        throw new IllegalStateException(what + ": no MoE layer");
    }

    // ---- backward ----

    /**
     * Adds d(gradScale * (loss + auxLoss())) / d(parameter) of the last forward in slot 0 into
     * every parameter's gradient (call {@link #zeroGrad} to start a step; accumulate micro-batches
     * with gradScale = 1 / their number).
     */
    public void backward(float gradScale) {
        completed("backward");
        if (!Float.isFinite(gradScale)) {
            throw new IllegalArgumentException("gradScale: must be finite, got " + gradScale);
        }
        backward(0, gradScale);
    }

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
            MoELayer.Workspace ws = s.moe[i];
            ops.blockBackward(blocks[i], s.layers[i], residual, grads,
                    moe == null ? null : d -> moe.backward(d, gradScale, ws));
        }
        if (isFirst()) {
            try (var t = ops.time("embedding.backward")) {
                backend.embeddingBackward(s.ids, grads.dResidual(), wte.grad(), wpe.grad());
            }
        }
    }

    // ---- plumbing ----

    /** Slot 0 after a completed forward. */
    private Slot completed(String what) {
        if (slots == null || !slots[0].forwardDone) {
            throw new IllegalStateException(what + ": no completed forward pass; call forward first");
        }
        return slots[0];
    }

    private void checkBatch(int[] inputs, int[] targets, int batch, int seq) {
        if (batch < 1) {
            throw new IllegalArgumentException("batch: must be >= 1, got " + batch);
        }
        if (seq < 1 || seq > config.maxSeq()) {
            throw new IllegalArgumentException("seq: must be in [1, maxSeq=" + config.maxSeq() + "], got " + seq);
        }
        long tokens = (long) batch * seq;
        if (tokens > Integer.MAX_VALUE / Math.max(config.vocab(), 3 * config.hidden())) {
            throw new IllegalArgumentException("batch: " + batch + " x seq " + seq + " tokens are too many for one pass");
        }
        checkIds("inputs", inputs, tokens, 0);
        checkIds("targets", targets, tokens, -1);
    }

    /** ids has batch * seq entries, each in [min, vocab). */
    private void checkIds(String arg, int[] ids, long tokens, int min) {
        if (ids == null || ids.length != tokens) {
            throw new IllegalArgumentException(arg + ": expected batch * seq = " + tokens + " ids, got "
                    + (ids == null ? "null" : ids.length + ""));
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < min || ids[i] >= config.vocab()) {
                throw new IllegalArgumentException(arg + "[" + i + "]: " + ids[i] + " is outside [" + min + ", "
                        + config.vocab() + ")");
            }
        }
    }

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
        tensorSum = null;
    }

    /** Frees the parameters, the MoE layers and the activations; the model is unusable afterwards. */
    @Override
    public void close() {
        closeActivations();
        moeLayers.forEach(MoELayer::close);
        weights.close();
        params.close();
        if (singleDevice) {
            groups.close();
        }
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
        /** Per block: its MoE layer's workspace, null for a dense block. */
        final MoELayer.Workspace[] moe;
        /** Last stage only. */
        final HeadActivations head;
        boolean forwardDone;

        Slot(int batch, int seq) {
            this.batch = batch;
            this.seq = seq;
            this.scope = TensorScope.shared(backend);
            int n = batch * seq;
            int c = config.hidden();
            ids = isFirst() ? scope.allocate("ids", DType.I32, batch, seq) : null;
            input = scope.allocate("input", dtype, n, c);
            layers = new BlockActivations[blocks.length];
            moe = new MoELayer.Workspace[blocks.length];
            for (int i = 0; i < layers.length; i++) {
                layers[i] = new BlockActivations(scope, config, dtype, "blocks." + (stage * blocks.length + i) + ".",
                        batch, seq, tp, blocks[i].moe() != null);
                moe[i] = blocks[i].moe() == null ? null : blocks[i].moe().newWorkspace();
            }
            head = isLast() ? new HeadActivations(scope, config, dtype, n) : null;
        }

        @Override
        public void close() {
            for (MoELayer.Workspace ws : moe) {
                if (ws != null) {
                    ws.close();
                }
            }
            scope.close();
        }
    }
}
