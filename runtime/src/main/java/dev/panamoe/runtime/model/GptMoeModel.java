package dev.panamoe.runtime.model;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.report.OperatorTimer;
import java.util.ArrayList;
import java.util.List;

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
    /** GPT-2's norm epsilon. */
    private static final float NORM_EPS = 1e-5f;

    /** A linear layer y = x · weight + bias; weight [in, out], bias [out]. */
    private record Linear(Parameter weight, Parameter bias) {
    }

    /** Norm weights; bias is null for RMSNorm. */
    private record NormWeights(Parameter weight, Parameter bias) {
    }

    /** A pre-norm block: attention, then either a dense FFN (fc, fcProj) or an MoE layer. */
    private record Block(NormWeights ln1, Linear qkv, Linear attnProj, NormWeights ln2, Linear fc, Linear fcProj,
            MoELayer moe) {
    }

    private final Backend backend;
    private final GptMoeConfig config;
    private final long seed;
    private final TensorScope params;
    private final Parameter wte;
    private final Parameter wpe;
    private final Block[] blocks;
    private final NormWeights lnf;
    /** The LM head [vocab, C]: wte itself when the embeddings are tied. */
    private final Parameter head;
    private final List<MoELayer> moeLayers = new ArrayList<>();

    private Activations acts;
    /** Targets that count in the last forward's mean loss. */
    private int keptTargets;
    private boolean forwardDone;
    private OperatorTimer timer;

    public GptMoeModel(Backend backend, GptMoeConfig config, long seed) {
        if (backend == null || config == null) {
            throw new IllegalArgumentException("backend, config: must not be null, got " + backend + ", " + config);
        }
        this.backend = backend;
        this.config = config;
        this.seed = seed;
        this.params = TensorScope.shared(backend);
        int c = config.hidden();
        this.wte = parameter("wte", config.vocab(), c);
        this.wpe = parameter("wpe", config.maxSeq(), c);
        this.blocks = new Block[config.layers()];
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
                blocks[l] = new Block(ln1, qkv, attnProj, ln2, null, null, moe);
            } else {
                Linear fc = linear(p + "mlp.fc", c, config.denseFfn());
                Linear fcProj = linear(p + "mlp.proj", config.denseFfn(), c);
                blocks[l] = new Block(ln1, qkv, attnProj, ln2, fc, fcProj, null);
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
        this.timer = timer;
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
            Block b = blocks[l];
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
     * or -1; 1 <= seq <= maxSeq. Keeps the activations for {@link #backward}.
     */
    public float forward(int[] inputs, int[] targets, int batch, int seq) {
        checkBatch(inputs, targets, batch, seq);
        forwardDone = false;
        Activations a = activations(batch, seq);
        a.ids.copyFrom(inputs);
        a.targets.copyFrom(targets);
        keptTargets = 0;
        for (int t : targets) {
            keptTargets += t >= 0 ? 1 : 0;
        }
        try (var t = time("embedding")) {
            backend.embeddingForward(a.ids, wte.value(), wpe.value(), a.encoded);
        }
        Tensor x = a.encoded;
        for (int l = 0; l < blocks.length; l++) {
            x = blockForward(blocks[l], a.layers[l], x);
        }
        norm(lnf, x, a.lnf, a.lnfMean, a.lnfRstd);
        try (var t = time("lm_head")) {
            backend.gemm(false, true, 1f, a.lnf, head.value(), 0f, a.logits);
        }
        float loss;
        try (var t = time("cross_entropy")) {
            loss = backend.crossEntropyForward(a.logits, a.targets, a.losses);
        }
        forwardDone = true;
        return loss;
    }

    /** Returns the block's output [N, C] from its input (the residual stream). */
    private Tensor blockForward(Block b, LayerActivations x, Tensor residual) {
        norm(b.ln1(), residual, x.ln1, x.ln1Mean, x.ln1Rstd);
        linear(b.qkv(), x.ln1, x.qkv);
        try (var t = time("attention")) {
            backend.attentionForward(config.heads(), x.qkv, x.att, x.attOut);
        }
        linear(b.attnProj(), x.attOut, x.attProj);
        residual(residual, x.attProj, x.resAtt);
        norm(b.ln2(), x.resAtt, x.ln2, x.ln2Mean, x.ln2Rstd);
        Tensor ffnOut;
        if (b.moe() != null) {
            try (var t = time("moe")) {
                ffnOut = b.moe().forward(x.ln2);
            }
        } else {
            linear(b.fc(), x.ln2, x.fcPre);
            try (var t = time("gelu")) {
                backend.activationForward(Activation.GELU, x.fcPre, x.fcAct);
            }
            linear(b.fcProj(), x.fcAct, x.ffnOut);
            ffnOut = x.ffnOut;
        }
        residual(x.resAtt, ffnOut, x.out);
        return x.out;
    }

    private void linear(Linear l, Tensor x, Tensor out) {
        try (var t = time("linear")) {
            backend.gemm(false, false, 1f, x, l.weight().value(), 0f, out);
            backend.biasAdd(l.bias().value(), out);
        }
    }

    private void norm(NormWeights n, Tensor x, Tensor out, Tensor mean, Tensor rstd) {
        try (var t = time("norm")) {
            if (n.bias() != null) {
                backend.layerNormForward(x, n.weight().value(), n.bias().value(), NORM_EPS, out, mean, rstd);
            } else {
                backend.rmsNormForward(x, n.weight().value(), NORM_EPS, out, rstd);
            }
        }
    }

    private void residual(Tensor x, Tensor branch, Tensor out) {
        try (var t = time("residual")) {
            backend.add(x, branch, out);
        }
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
        float meanScale = keptTargets == 0 ? 0f : gradScale / keptTargets;
        try (var t = time("cross_entropy.backward")) {
            backend.crossEntropyBackward(a.logits, a.targets, meanScale, a.dLogits);
        }
        try (var t = time("lm_head.backward")) {
            backend.gemm(true, false, 1f, a.dLogits, a.lnf, 1f, head.grad());
            backend.gemm(false, false, 1f, a.dLogits, head.value(), 0f, a.dNormOut);
        }
        normBackward(lnf, a.layers[blocks.length - 1].out, a.lnfMean, a.lnfRstd, a.dNormOut, a.dResidual);
        for (int l = blocks.length - 1; l >= 0; l--) {
            Tensor residual = l == 0 ? a.encoded : a.layers[l - 1].out;
            blockBackward(blocks[l], a.layers[l], residual, gradScale, a);
        }
        try (var t = time("embedding.backward")) {
            backend.embeddingBackward(a.ids, a.dResidual, wte.grad(), wpe.grad());
        }
    }

    /** On entry a.dResidual holds d loss / d (block output); on exit d loss / d (block input). */
    private void blockBackward(Block b, LayerActivations x, Tensor residual, float gradScale, Activations a) {
        Tensor dLn2;
        if (b.moe() != null) {
            try (var t = time("moe.backward")) {
                dLn2 = b.moe().backward(a.dResidual, gradScale, b.moe().workspace());
            }
        } else {
            linearBackward(b.fcProj(), x.fcAct, a.dResidual, a.dFcAct);
            try (var t = time("gelu.backward")) {
                backend.activationBackward(Activation.GELU, x.fcPre, a.dFcAct, a.dFcPre);
            }
            linearBackward(b.fc(), x.ln2, a.dFcPre, a.dNormOut);
            dLn2 = a.dNormOut;
        }
        normBackward(b.ln2(), x.resAtt, x.ln2Mean, x.ln2Rstd, dLn2, a.dNormIn);
        residualBackward(a.dNormIn, a.dResidual);
        linearBackward(b.attnProj(), x.attOut, a.dResidual, a.dAttOut);
        try (var t = time("attention.backward")) {
            backend.attentionBackward(config.heads(), x.qkv, x.att, a.dAttOut, a.dQkv);
        }
        linearBackward(b.qkv(), x.ln1, a.dQkv, a.dNormOut);
        normBackward(b.ln1(), residual, x.ln1Mean, x.ln1Rstd, a.dNormOut, a.dNormIn);
        residualBackward(a.dNormIn, a.dResidual);
    }

    /** weight.grad += x^T · dOut, bias.grad += column sums of dOut, dx = dOut · weight^T. */
    private void linearBackward(Linear l, Tensor x, Tensor dOut, Tensor dx) {
        try (var t = time("linear.backward")) {
            backend.gemm(true, false, 1f, x, dOut, 1f, l.weight().grad());
            backend.biasBackward(dOut, l.bias().grad());
            backend.gemm(false, true, 1f, dOut, l.weight().value(), 0f, dx);
        }
    }

    /** dx = d loss / d x (overwritten); the weight (and bias) gradients accumulate. */
    private void normBackward(NormWeights n, Tensor x, Tensor mean, Tensor rstd, Tensor dOut, Tensor dx) {
        try (var t = time("norm.backward")) {
            if (n.bias() != null) {
                backend.layerNormBackward(x, n.weight().value(), mean, rstd, dOut, dx, n.weight().grad(),
                        n.bias().grad());
            } else {
                backend.rmsNormBackward(x, n.weight().value(), rstd, dOut, dx, n.weight().grad());
            }
        }
    }

    /** The residual stream's gradient gains a branch's gradient: dResidual += dBranch. */
    private void residualBackward(Tensor dBranch, Tensor dResidual) {
        try (var t = time("residual.backward")) {
            backend.accumulate(dBranch, dResidual);
        }
    }

    // ---- plumbing ----

    /** A running span of the operator, or null (try-with-resources skips a null resource). */
    private OperatorTimer.Span time(String operator) {
        return timer == null ? null : timer.start(operator);
    }

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

    /** One block's activations, kept from forward for backward. Statistics are per token. */
    private final class LayerActivations {
        final Tensor ln1;
        final Tensor ln1Mean;
        final Tensor ln1Rstd;
        final Tensor qkv;
        final Tensor att;
        final Tensor attOut;
        final Tensor attProj;
        final Tensor resAtt;
        final Tensor ln2;
        final Tensor ln2Mean;
        final Tensor ln2Rstd;
        // dense FFN only (the MoE layer keeps its own)
        final Tensor fcPre;
        final Tensor fcAct;
        final Tensor ffnOut;
        final Tensor out;

        LayerActivations(TensorScope s, int l, int batch, int seq, boolean moe) {
            int n = batch * seq;
            int c = config.hidden();
            int f = config.denseFfn();
            String p = "blocks." + l + ".";
            ln1 = s.allocate(p + "ln1", DType.F32, n, c);
            ln1Mean = mean(s, p + "ln1.mean", n);
            ln1Rstd = s.allocate(p + "ln1.rstd", DType.F32, n);
            qkv = s.allocate(p + "qkv", DType.F32, n, 3 * c);
            att = s.allocate(p + "att", DType.F32, batch, config.heads(), seq, seq);
            attOut = s.allocate(p + "attOut", DType.F32, n, c);
            attProj = s.allocate(p + "attProj", DType.F32, n, c);
            resAtt = s.allocate(p + "resAtt", DType.F32, n, c);
            ln2 = s.allocate(p + "ln2", DType.F32, n, c);
            ln2Mean = mean(s, p + "ln2.mean", n);
            ln2Rstd = s.allocate(p + "ln2.rstd", DType.F32, n);
            fcPre = moe ? null : s.allocate(p + "fcPre", DType.F32, n, f);
            fcAct = moe ? null : s.allocate(p + "fcAct", DType.F32, n, f);
            ffnOut = moe ? null : s.allocate(p + "ffnOut", DType.F32, n, c);
            out = s.allocate(p + "out", DType.F32, n, c);
        }
    }

    /** LayerNorm's per-row means; RMSNorm has none. */
    private Tensor mean(TensorScope s, String name, int rows) {
        return config.norm() == Norm.LAYER ? s.allocate(name, DType.F32, rows) : null;
    }

    /** The buffers of one (batch, seq): every block's activations and the gradients shared by all blocks. */
    private final class Activations implements AutoCloseable {
        final int batch;
        final int seq;
        final TensorScope scope;
        final Tensor ids;
        final Tensor targets;
        final Tensor encoded;
        final LayerActivations[] layers;
        final Tensor lnf;
        final Tensor lnfMean;
        final Tensor lnfRstd;
        final Tensor logits;
        final Tensor losses;
        // gradients; dFcAct and dFcPre only when some block is dense
        final Tensor dLogits;
        final Tensor dResidual;
        final Tensor dNormOut;
        final Tensor dNormIn;
        final Tensor dAttOut;
        final Tensor dQkv;
        final Tensor dFcAct;
        final Tensor dFcPre;

        Activations(int batch, int seq) {
            this.batch = batch;
            this.seq = seq;
            this.scope = TensorScope.shared(backend);
            int n = batch * seq;
            int c = config.hidden();
            int v = config.vocab();
            int f = config.denseFfn();
            boolean anyDense = config.moeEvery() > 1;
            ids = scope.allocate("ids", DType.I32, batch, seq);
            targets = scope.allocate("targets", DType.I32, n);
            encoded = scope.allocate("encoded", DType.F32, n, c);
            layers = new LayerActivations[blocks.length];
            for (int l = 0; l < layers.length; l++) {
                layers[l] = new LayerActivations(scope, l, batch, seq, blocks[l].moe() != null);
            }
            lnf = scope.allocate("lnf", DType.F32, n, c);
            lnfMean = mean(scope, "lnf.mean", n);
            lnfRstd = scope.allocate("lnf.rstd", DType.F32, n);
            logits = scope.allocate("logits", DType.F32, n, v);
            losses = scope.allocate("losses", DType.F32, n);
            dLogits = scope.allocate("dLogits", DType.F32, n, v);
            dResidual = scope.allocate("dResidual", DType.F32, n, c);
            dNormOut = scope.allocate("dNormOut", DType.F32, n, c);
            dNormIn = scope.allocate("dNormIn", DType.F32, n, c);
            dAttOut = scope.allocate("dAttOut", DType.F32, n, c);
            dQkv = scope.allocate("dQkv", DType.F32, n, 3 * c);
            dFcAct = anyDense ? scope.allocate("dFcAct", DType.F32, n, f) : null;
            dFcPre = anyDense ? scope.allocate("dFcPre", DType.F32, n, f) : null;
        }

        @Override
        public void close() {
            scope.close();
        }
    }
}
