package dev.panamoe.runtime.model;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.model.BlockOps.Block;
import dev.panamoe.runtime.model.BlockOps.BlockActivations;
import dev.panamoe.runtime.model.BlockOps.BlockGradients;
import dev.panamoe.runtime.model.BlockOps.HeadActivations;
import dev.panamoe.runtime.model.BlockOps.Linear;
import dev.panamoe.runtime.model.BlockOps.NormWeights;
import dev.panamoe.runtime.report.OperatorTimer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;

/**
 * A GPT-2 style language model whose FFNs are, every {@link GptMoeConfig#moeEvery()}-th block, a
 * Mixture of Experts ({@link MoELayer}). With N = batch * seq tokens and C = hidden:
 * <pre>
 *   x = wte[ids] + wpe[positions]                                 [N, C]
 *   per block:  x = x + proj(attention(qkv(norm1(x))))            causal multi-head attention
 *               x = x + ffn(norm2(x))                             MoE, or linear-GeLU-linear
 *   logits = normf(x) · head^T                                    [N, vocab]; head = wte when tied
 *   loss = mean cross-entropy over the targets that are not -1
 * </pre>
 * Written in the style of llm.c: the activations of one (batch, seq) are named buffers
 * allocated once and reused while the shape stays the same; forward is the sequence of backend
 * calls above and backward runs it in reverse, with one set of gradient buffers shared by all
 * blocks. Linear weights are [in, out] (as the MoE gate's), the head is [vocab, C] like wte.
 *
 * <p>Parameters are initialised as GPT-2's by {@link ParameterInit}, each from a generator
 * seeded by the model seed and the parameter's name: a parameter's initial value does not depend
 * on which other parameters exist, so an expert, or a shard of a parallel run, can be initialised
 * on its own. Everything is deterministic: the same seed and inputs
 * give bitwise the same losses and gradients, for any thread count.
 *
 * <p>Not thread-safe; one model per training thread.
 */
public final class GptMoeModel implements AutoCloseable {
    private final Backend backend;
    private final GptMoeConfig config;
    private final long seed;
    private final TensorScope params;
    private final Parameter wte;
    private final Parameter wpe;
    private final Block<MoELayer>[] blocks;
    private final NormWeights lnf;
    /** The LM head [vocab, C]: wte itself when the embeddings are tied. */
    private final Parameter head;
    private final List<MoELayer> moeLayers = new ArrayList<>();
    private final BlockOps ops;

    private Activations acts;
    private boolean forwardDone;

    public GptMoeModel(Backend backend, GptMoeConfig config, long seed) {
        if (backend == null || config == null) {
            throw new IllegalArgumentException("backend, config: must not be null, got " + backend + ", " + config);
        }
        this.backend = backend;
        this.config = config;
        this.seed = seed;
        this.params = TensorScope.shared(backend);
        this.ops = new BlockOps(backend, config.heads(), t -> { });
        int c = config.hidden();
        this.wte = parameter("wte", config.vocab(), c);
        this.wpe = parameter("wpe", config.maxSeq(), c);
        @SuppressWarnings("unchecked")
        Block<MoELayer>[] blocks = new Block[config.layers()];
        this.blocks = blocks;
        for (int l = 0; l < blocks.length; l++) {
            String p = "blocks." + l + ".";
            NormWeights ln1 = norm(p + "ln1");
            Linear qkv = linear(p + "attn.qkv", c, 3 * c);
            Linear attnProj = linear(p + "attn.proj", c, c);
            NormWeights ln2 = norm(p + "ln2");
            if (config.isMoeBlock(l)) {
                MoELayer moe = new MoELayer(backend, config.moeConfig(), seed);
                for (Parameter param : moeParameters(l, moe)) {
                    initialise(param);
                }
                moeLayers.add(moe);
                blocks[l] = new Block<>(ln1, qkv, attnProj, ln2, null, null, moe);
            } else {
                Linear fc = linear(p + "mlp.fc", c, config.denseFfn());
                Linear fcProj = linear(p + "mlp.proj", config.denseFfn(), c);
                blocks[l] = new Block<>(ln1, qkv, attnProj, ln2, fc, fcProj, null);
            }
        }
        this.lnf = norm("lnf");
        this.head = config.tiedEmbeddings() ? wte : parameter("head.weight", config.vocab(), c);
    }

    public GptMoeConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    public int moeLayerCount() {
        return moeLayers.size();
    }

    /** MoE layer i (0-based, in block order), e.g. to set its expert placement. */
    public MoELayer moeLayer(int i) {
        if (i < 0 || i >= moeLayers.size()) {
            throw new IllegalArgumentException("i: MoE layer " + i + " is outside [0, " + moeLayers.size() + ")");
        }
        return moeLayers.get(i);
    }

    /** Times each operator of forward and backward under its kind ("attention", "moe.backward", ...); null = off. */
    public void setTimer(OperatorTimer timer) {
        ops.setTimer(timer);
    }

    // ---- parameters ----

    /**
     * Every parameter in a fixed order: wte, wpe, then per block ln1, attn.qkv, attn.proj, ln2
     * and either mlp.fc, mlp.proj or moe.gate, moe.experts.0.w1, moe.experts.0.w2, ...; then lnf
     * and head.weight unless tied. Names are unique ("blocks.3.attn.qkv.weight",
     * "blocks.1.moe.experts.5.w1"); each expert's tensors are its own.
     */
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>();
        all.add(wte);
        all.add(wpe);
        for (int l = 0; l < blocks.length; l++) {
            Block<MoELayer> b = blocks[l];
            addNorm(all, b.ln1());
            addLinear(all, b.qkv());
            addLinear(all, b.attnProj());
            addNorm(all, b.ln2());
            if (b.moe() != null) {
                all.addAll(moeParameters(l, b.moe()));
            } else {
                addLinear(all, b.fc());
                addLinear(all, b.fcProj());
            }
        }
        addNorm(all, lnf);
        if (head != wte) {
            all.add(head);
        }
        return all;
    }

    public void zeroGrad() {
        for (Parameter p : parameters()) {
            p.zeroGrad();
        }
    }

    /** The MoE layer's parameters under the model's names: "blocks.l.moe.gate", "blocks.l.moe.experts.e.w1". */
    private static List<Parameter> moeParameters(int layer, MoELayer moe) {
        String prefix = "blocks." + layer + ".moe.";
        Parameter gate = moe.router().weight();
        List<Parameter> renamed = new ArrayList<>();
        for (Parameter p : moe.parameters()) {
            renamed.add(new Parameter(prefix + (p == gate ? "gate" : p.name()), p.value(), p.grad()));
        }
        return renamed;
    }

    private static void addLinear(List<Parameter> all, Linear linear) {
        all.add(linear.weight());
        all.add(linear.bias());
    }

    private static void addNorm(List<Parameter> all, NormWeights norm) {
        all.add(norm.weight());
        if (norm.bias() != null) {
            all.add(norm.bias());
        }
    }

    private Linear linear(String name, int in, int out) {
        return new Linear(parameter(name + ".weight", in, out), parameter(name + ".bias", out));
    }

    private NormWeights norm(String name) {
        Parameter weight = parameter(name + ".weight", config.hidden());
        Parameter bias = config.norm() == Norm.LAYER ? parameter(name + ".bias", config.hidden()) : null;
        return new NormWeights(weight, bias);
    }

    private Parameter parameter(String name, int... shape) {
        Parameter p = Parameter.allocate(params, name, shape);
        initialise(p);
        return p;
    }

    /** The value {@link ParameterInit} gives the parameter's name under the model seed. */
    private void initialise(Parameter p) {
        p.value().copyFrom(ParameterInit.values(config, seed, p.name(), Math.toIntExact(p.value().numel())));
    }

    // ---- forward ----

    /**
     * Mean cross-entropy of the next-token predictions over the targets that are not -1.
     * inputs and targets are [batch, seq] row-major; inputs in [0, vocab), targets in [0, vocab)
     * or -1; {@code 1 <= seq <= maxSeq}. Keeps the activations for {@link #backward}.
     */
    public float forward(int[] inputs, int[] targets, int batch, int seq) {
        checkBatch(inputs, targets, batch, seq);
        forwardDone = false;
        Activations a = activations(batch, seq);
        a.ids.copyFrom(inputs);
        a.head.setTargets(targets);
        try (var t = ops.time("embedding")) {
            backend.embeddingForward(a.ids, wte.value(), wpe.value(), a.encoded);
        }
        Tensor x = a.encoded;
        for (int l = 0; l < blocks.length; l++) {
            MoELayer moe = blocks[l].moe();
            x = ops.blockForward(blocks[l], a.layers[l], x, moe == null ? null : moe::forward);
        }
        float loss = ops.headForward(lnf, head, x, a.head);
        forwardDone = true;
        return loss;
    }

    /** The logits [batch * seq, vocab] of the last forward, row t of a sequence predicting its token t + 1. */
    public Tensor logits() {
        requireForward("logits");
        return acts.head.logits;
    }

    /**
     * The logits [1, vocab] after the token at position (0-based) of one sequence whose earlier
     * positions' keys and values attention(l) holds for block l: the last row of a forward over
     * the whole prefix, for one token's work. The buffers are the caller's, for one token, and so
     * are the MoE blocks' workspaces (null for a dense block): the model's own keep the last forward.
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
            backend.add(wte.value().slice(token, token + 1), wpe.value().slice(position, position + 1), encoded);
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

    /** Sum over the MoE layers of their aux and z losses in the last forward (already scaled by their coefficients). */
    public float auxLoss() {
        requireForward("auxLoss");
        float sum = 0;
        for (MoELayer moe : moeLayers) {
            sum += moe.workspace().auxLoss() + moe.workspace().zLoss();
        }
        return sum;
    }

    /** [moeLayer][expert]: the (token, k) slots the router sent to each expert in the last forward. */
    public int[][] expertCounts() {
        requireForward("expertCounts");
        int[][] counts = new int[moeLayers.size()][];
        for (int i = 0; i < counts.length; i++) {
            counts[i] = moeLayers.get(i).workspace().routedCounts();
        }
        return counts;
    }

    // ---- backward ----

    /**
     * Adds d(gradScale * (loss + auxLoss())) / d(parameter) of the last forward into every
     * parameter's gradient (call {@link #zeroGrad} to start a step; accumulate micro-batches
     * with gradScale = 1 / their number).
     */
    public void backward(float gradScale) {
        requireForward("backward");
        if (!Float.isFinite(gradScale)) {
            throw new IllegalArgumentException("gradScale: must be finite, got " + gradScale);
        }
        Activations a = acts;
        int kept = a.head.keptTargets();
        float meanScale = kept == 0 ? 0f : gradScale / kept;
        ops.headBackward(lnf, head, a.layers[blocks.length - 1].out(), a.head, meanScale, a.grads);
        for (int l = blocks.length - 1; l >= 0; l--) {
            Tensor residual = l == 0 ? a.encoded : a.layers[l - 1].out();
            MoELayer moe = blocks[l].moe();
            ops.blockBackward(blocks[l], a.layers[l], residual, a.grads,
                    moe == null ? null : d -> moe.backward(d, gradScale, moe.workspace()));
        }
        try (var t = ops.time("embedding.backward")) {
            backend.embeddingBackward(a.ids, a.grads.dResidual(), wte.grad(), wpe.grad());
        }
    }

    // ---- plumbing ----

    private void requireForward(String what) {
        if (!forwardDone) {
            throw new IllegalStateException(what + ": no completed forward pass; call forward first");
        }
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

    private Activations activations(int batch, int seq) {
        if (acts == null || acts.batch != batch || acts.seq != seq) {
            if (acts != null) {
                acts.close();
            }
            acts = new Activations(batch, seq);
        }
        return acts;
    }

    /** Frees the parameters, the MoE layers and the activations; the model is unusable afterwards. */
    @Override
    public void close() {
        if (acts != null) {
            acts.close();
        }
        for (MoELayer moe : moeLayers) {
            moe.close();
        }
        params.close();
        forwardDone = false;
    }

    /** The buffers of one (batch, seq): every block's activations, the head's, and the gradients shared by all blocks. */
    private final class Activations implements AutoCloseable {
        final int batch;
        final int seq;
        final TensorScope scope;
        final Tensor ids;
        final Tensor encoded;
        final BlockActivations[] layers;
        final HeadActivations head;
        final BlockGradients grads;

        Activations(int batch, int seq) {
            this.batch = batch;
            this.seq = seq;
            this.scope = TensorScope.shared(backend);
            int n = batch * seq;
            ids = scope.allocate("ids", DType.I32, batch, seq);
            encoded = scope.allocate("encoded", DType.F32, n, config.hidden());
            layers = new BlockActivations[blocks.length];
            for (int l = 0; l < layers.length; l++) {
                layers[l] = new BlockActivations(scope, config, "blocks." + l + ".", batch, seq, 1,
                        blocks[l].moe() != null);
            }
            head = new HeadActivations(scope, config, n);
            grads = new BlockGradients(scope, config, n, 1, true);
        }

        @Override
        public void close() {
            scope.close();
        }
    }
}
