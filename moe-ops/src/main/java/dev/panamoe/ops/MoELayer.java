package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A Mixture-of-Experts FFN layer on one device:
 * <pre>
 *   router:   logits = x · W_gate, scores, top-k (ids, weights); aux loss and z-loss
 *   dispatch: remap ids to physical slots, plan with capacity, permute x to expert order
 *   experts:  grouped FFN  out = act(xs · W1_e) · W2_e
 *   combine:  y[t] = sum_j w[t, j] * out[row of (t, j)]
 * </pre>
 * forward caches in a {@link Workspace} exactly what backward needs (a reference to x, the
 * routing, the plan, the permuted rows and the expert pre-activations); backward returns the
 * gradient of x and accumulates into the gradients of the gate and of every expert (call
 * {@link #zeroGrad} between steps). The losses' gradients flow into the router.
 *
 * <p>Precision: with {@link Config#dtype()} bf16 (a building block of mixed-precision
 * training) x, y, the expert rows and the gradients of x and of the rows are bf16; the
 * parameters stay f32 masters with f32 gradients, and the gate and expert GEMMs read bf16
 * working copies of them, which {@link #refreshWorkingCopies} rounds from the masters (call it
 * after every optimizer step, or after writing the masters). The router's logits, scores, top-k
 * and the losses stay f32.
 *
 * <p>A workspace keeps its buffers across calls with the same token count and reallocates them
 * only when it changes. forward(x)/backward(gradY) use the layer's own workspace; a pipeline
 * schedule with several micro-batches in flight gives each one a {@link #newWorkspace()}.
 */
public final class MoELayer implements AutoCloseable {

    /**
     * Layer configuration. capacityFactor is {@link #DROPLESS} (+infinity) for no capacity
     * limit, else > 0: each expert keeps ceil(tokens * topK * capacityFactor / experts) rows.
     * dtype is the storage of the activations and of the weights the GEMMs read: f32, or bf16
     * (f32 masters and gradients, bf16 working copies).
     */
    public record Config(int hidden, int ffn, int experts, int topK, Activation activation,
            ScoreFunction scoreFunction, boolean renormalize, double capacityFactor, DropPolicy dropPolicy,
            float auxLossCoeff, float zLossCoeff, DType dtype) {

        public static final double DROPLESS = Dispatcher.DROPLESS;

        public Config {
            Checks.atLeast("hidden", hidden, 1);
            Checks.atLeast("ffn", ffn, 1);
            Checks.atLeast("experts", experts, 1);
            Checks.require(topK >= 1 && topK <= experts, "topK: must be in [1, experts=" + experts + "], got " + topK);
            Checks.notNull("activation", activation);
            Checks.notNull("scoreFunction", scoreFunction);
            Checks.require(capacityFactor > 0, "capacityFactor: must be > 0 (or DROPLESS), got " + capacityFactor);
            Checks.notNull("dropPolicy", dropPolicy);
            Checks.require(auxLossCoeff >= 0 && Float.isFinite(auxLossCoeff),
                    "auxLossCoeff: must be finite and >= 0, got " + auxLossCoeff);
            Checks.require(zLossCoeff >= 0 && Float.isFinite(zLossCoeff),
                    "zLossCoeff: must be finite and >= 0, got " + zLossCoeff);
            Checks.notNull("dtype", dtype);
            Checks.require(dtype == DType.F32 || dtype == DType.BF16, "dtype: must be f32 or bf16, got " + dtype);
        }

        public boolean dropless() {
            return capacityFactor == DROPLESS;
        }

        /**
         * Defaults: SwiGLU, softmax scores renormalized over the top-k, dropless (drop by
         * probability once a capacity factor is set), aux loss 0.01, z-loss 0.001, f32; hidden,
         * ffn, experts and topK must be set.
         */
        public static Builder builder() {
            return new Builder();
        }

        public Builder toBuilder() {
            return new Builder().hidden(hidden).ffn(ffn).experts(experts).topK(topK).activation(activation)
                    .scoreFunction(scoreFunction).renormalize(renormalize).capacityFactor(capacityFactor)
                    .dropPolicy(dropPolicy).auxLossCoeff(auxLossCoeff).zLossCoeff(zLossCoeff).dtype(dtype);
        }

        public static final class Builder {
            private int hidden;
            private int ffn;
            private int experts;
            private int topK;
            private Activation activation = Activation.SWIGLU;
            private ScoreFunction scoreFunction = ScoreFunction.SOFTMAX;
            private boolean renormalize = true;
            private double capacityFactor = Config.DROPLESS;
            private DropPolicy dropPolicy = DropPolicy.BY_PROBABILITY;
            private float auxLossCoeff = 0.01f;
            private float zLossCoeff = 0.001f;
            private DType dtype = DType.F32;

            private Builder() {
            }

            public Builder hidden(int v) { hidden = v; return this; }
            public Builder ffn(int v) { ffn = v; return this; }
            public Builder experts(int v) { experts = v; return this; }
            public Builder topK(int v) { topK = v; return this; }
            public Builder activation(Activation v) { activation = v; return this; }
            public Builder scoreFunction(ScoreFunction v) { scoreFunction = v; return this; }
            public Builder renormalize(boolean v) { renormalize = v; return this; }
            public Builder capacityFactor(double v) { capacityFactor = v; return this; }
            public Builder dropless() { capacityFactor = Config.DROPLESS; return this; }
            public Builder dropPolicy(DropPolicy v) { dropPolicy = v; return this; }
            public Builder auxLossCoeff(float v) { auxLossCoeff = v; return this; }
            public Builder zLossCoeff(float v) { zLossCoeff = v; return this; }
            public Builder dtype(DType v) { dtype = v; return this; }

            public Config build() {
                return new Config(hidden, ffn, experts, topK, activation, scoreFunction, renormalize, capacityFactor,
                        dropPolicy, auxLossCoeff, zLossCoeff, dtype);
            }
        }
    }

    private final Backend backend;
    private final Config config;
    private final TensorScope params;
    private final Router router;
    private final LoadBalancingLoss losses;
    private final Dispatcher dispatcher;
    private final Experts experts;
    private final Combiner combiner;
    private final Workspace workspace;

    /**
     * Allocates and initialises the parameters from seed: the gate first, then each expert's
     * W1 and W2, each uniform in +-1/sqrt(fan_in) (torch.nn.Linear's default).
     */
    public MoELayer(Backend backend, Config config, long seed) {
        this.backend = Checks.notNull("backend", backend);
        this.config = Checks.notNull("config", config);
        this.params = TensorScope.shared(backend);
        SplittableRandom rng = new SplittableRandom(seed);
        Parameter gate = Parameter.allocate(params, "router.weight", config.hidden(), config.experts());
        Experts.initUniform(gate.value(), config.hidden(), rng);
        Tensor gateWork = config.dtype() == DType.BF16
                ? params.allocate("router.weight.bf16", DType.BF16, config.hidden(), config.experts()) : null;
        this.router = new Router(backend, gate, gateWork, config.topK(), config.scoreFunction(), config.renormalize());
        router.refreshWorkingCopy();
        this.losses = new LoadBalancingLoss(backend, config.topK(), config.auxLossCoeff(), config.zLossCoeff());
        this.dispatcher = new Dispatcher(backend, params, config.experts(), config.experts(), config.topK(),
                config.capacityFactor(), config.dropPolicy());
        this.experts = new Experts(backend, params, config.experts(), config.hidden(), config.ffn(),
                config.activation(), config.dtype(), rng);
        this.combiner = new Combiner(backend);
        this.workspace = new Workspace();
    }

    public Backend backend() {
        return backend;
    }

    public Config config() {
        return config;
    }

    public Router router() {
        return router;
    }

    public Dispatcher dispatcher() {
        return dispatcher;
    }

    public Experts experts() {
        return experts;
    }

    /** router.weight, then experts.0.w1, experts.0.w2, experts.1.w1, ... */
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>();
        all.add(router.weight());
        all.addAll(experts.parameters());
        return all;
    }

    public void zeroGrad() {
        parameters().forEach(Parameter::zeroGrad);
    }

    /**
     * Rounds the f32 master parameters into the bf16 working copies the passes read; call it
     * after each optimizer step (and after writing the masters). A no-op for an f32 layer.
     */
    public void refreshWorkingCopies() {
        router.refreshWorkingCopy();
        experts.refreshWorkingCopies();
    }

    /**
     * Places logical expert e in slot remap[e] (a permutation of the experts): the dispatcher
     * groups rows by slot and the experts' GEMM tables follow, so the layer computes the same
     * function under any placement. Call it between passes, not between a forward and its
     * backward (the same holds for {@link Experts#setExpert}).
     */
    public void setRemap(int[] remap) {
        dispatcher.setRemap(remap);
        int[] expertOfSlot = new int[config.experts()];
        for (int e = 0; e < remap.length; e++) {
            expertOfSlot[remap[e]] = e;
        }
        experts.setSlotOrder(expertOfSlot);
    }

    /** The layer's own workspace (used by forward(x) and backward(gradY)). */
    public Workspace workspace() {
        return workspace;
    }

    /** A separate workspace, e.g. one per micro-batch in flight; close it when done. */
    public Workspace newWorkspace() {
        return new Workspace();
    }

    public Tensor forward(Tensor x) {
        return forward(x, workspace);
    }

    public Tensor backward(Tensor gradY) {
        return backward(gradY, 1f, workspace);
    }

    /**
     * y [T, hidden] for x [T, hidden] (of the config's dtype, finite). x must stay unchanged until
     * the backward of this pass; y belongs to ws and is overwritten by its next forward.
     */
    public Tensor forward(Tensor x, Workspace ws) {
        checkOwn(ws);
        Checks.tensor("x", x, backend.device(), config.dtype(), ANY, config.hidden());
        Checks.require(x.dim(0) >= 1, "x: expected at least one token, got shape " + Arrays.toString(x.shape()));
        requireFinite("x", x);
        ws.ensure(x.dim(0));
        ws.x = null; // set once the pass is complete, so a failed forward cannot be differentiated
        router.forward(x, ws.logits, ws.scores, ws.topkWeights, ws.topkIds);
        losses.forward(ws.logits, ws.scores, ws.topkIds, ws.auxLoss, ws.zLoss, ws.routedCounts);
        dispatcher.plan(ws.topkIds, ws.topkWeights, ws.plan);
        ws.selectRows(ws.plan.rows());
        dispatcher.permute(x, ws.plan, ws.xs);
        experts.forward(ws.plan.expertOffsets(), ws.xs, ws.h, ws.act, ws.expertOut);
        combiner.forward(ws.expertOut, ws.topkWeights, ws.plan, ws.y);
        ws.x = x;
        return ws.y;
    }

    /**
     * Backward of ws's last forward: returns gradX [T, hidden] (owned by ws) and accumulates the
     * parameter gradients. lossScale is d(total loss) / d(aux loss + z-loss) — 1 when they are
     * simply added to the training loss, the same scale as gradY's otherwise.
     */
    public Tensor backward(Tensor gradY, float lossScale, Workspace ws) {
        checkOwn(ws);
        if (ws.x == null) {
            throw new IllegalStateException("backward: the workspace holds no completed forward pass; call forward first");
        }
        Checks.tensor("gradY", gradY, backend.device(), config.dtype(), ws.tokens, config.hidden());
        Checks.require(Float.isFinite(lossScale), "lossScale: must be finite, got " + lossScale);
        requireFinite("gradY", gradY);
        Checks.tensor("x", ws.x, backend.device(), config.dtype(), ws.tokens, config.hidden());

        combiner.backward(gradY, ws.expertOut, ws.topkWeights, ws.plan, ws.gradExpertOut, ws.gradTopkWeights);
        experts.backward(ws.plan.expertOffsets(), ws.xs, ws.h, ws.act, ws.gradExpertOut, ws.gradAct, ws.gradH,
                ws.gradXs);
        dispatcher.permuteBackward(ws.gradXs, ws.plan, ws.gradX);

        losses.backwardAux(ws.routedCounts, lossScale, ws.gradScores);
        router.backwardScores(ws.scores, ws.topkIds, ws.gradTopkWeights, ws.gradScores, ws.gradLogits);
        losses.backwardZ(ws.logits, lossScale, ws.gradLogits);
        router.backwardGate(ws.x, ws.gradLogits, ws.gradLogitsWork, ws.gradX, true);
        return ws.gradX;
    }

    private void checkOwn(Workspace ws) {
        Checks.notNull("ws", ws);
        Checks.require(ws.layer() == this, "ws: a workspace of another layer");
    }

    private void requireFinite(String arg, Tensor t) {
        if (!backend.checksValuesOnHost()) {
            return; // a device outside the debug mode: NaN/Inf shows in the loss instead of a host sync here
        }
        long i = backend.findNonFinite(t);
        if (i >= 0) {
            int cols = t.dim(1);
            throw new IllegalArgumentException(arg + ": non-finite value " + t.getFloat(i) + " at [" + i / cols + ", "
                    + i % cols + "]");
        }
    }

    /** Frees the parameters and the layer's own workspace. */
    @Override
    public void close() {
        workspace.close();
        params.close();
    }

    /**
     * The buffers of one forward/backward pass, allocated for one token count T and reused
     * while T stays the same. Row buffers have room for all T * K slots; each pass uses views
     * of the first plan.rows() of them.
     */
    public final class Workspace implements AutoCloseable {
        private TensorScope scope;
        private int tokens = -1;
        private Tensor x;

        // router and losses
        private Tensor logits;
        private Tensor scores;
        private Tensor topkWeights;
        private Tensor topkIds;
        private Tensor auxLoss;
        private Tensor zLoss;
        private Tensor routedCounts;
        // dispatch and experts: full-size buffers and this pass's views of their first rows
        private DispatchPlan plan;
        private Tensor xsBuffer;
        private Tensor hBuffer;
        private Tensor actBuffer;
        private Tensor expertOutBuffer;
        private Tensor xs;
        private Tensor h;
        private Tensor act;
        private Tensor expertOut;
        private Tensor y;
        // backward
        private Tensor gradExpertOutBuffer;
        private Tensor gradActBuffer;
        private Tensor gradHBuffer;
        private Tensor gradXsBuffer;
        private Tensor gradExpertOut;
        private Tensor gradAct;
        private Tensor gradH;
        private Tensor gradXs;
        private Tensor gradTopkWeights;
        private Tensor gradScores;
        private Tensor gradLogits;
        /** gradLogits rounded to bf16 for the router's bf16 GEMMs (bf16 only). */
        private Tensor gradLogitsWork;
        private Tensor gradX;

        private Workspace() {
        }

        private MoELayer layer() {
            return MoELayer.this;
        }

        private void ensure(int tokenCount) {
            if (tokenCount == tokens && scope.isOpen()) {
                return;
            }
            close();
            scope = TensorScope.shared(backend);
            tokens = tokenCount;
            int e = config.experts();
            int k = config.topK();
            int hidden = config.hidden();
            int ffn = config.ffn();
            int slots = tokens * k;
            int hWidth = config.activation().inputWidth(ffn);
            logits = scope.allocate("logits", DType.F32, tokens, e);
            scores = scope.allocate("scores", DType.F32, tokens, e);
            topkWeights = scope.allocate("topkWeights", DType.F32, tokens, k);
            topkIds = scope.allocate("topkIds", DType.I32, tokens, k);
            auxLoss = scope.allocate("auxLoss", DType.F32, 1);
            zLoss = scope.allocate("zLoss", DType.F32, 1);
            routedCounts = scope.allocate("routedCounts", DType.I32, e);
            plan = dispatcher.newPlan(scope, tokens);
            DType rows = config.dtype();
            xsBuffer = scope.allocate("xs", rows, slots, hidden);
            hBuffer = scope.allocate("h", rows, slots, hWidth);
            actBuffer = scope.allocate("act", rows, slots, ffn);
            expertOutBuffer = scope.allocate("expertOut", rows, slots, hidden);
            y = scope.allocate("y", rows, tokens, hidden);
            gradExpertOutBuffer = scope.allocate("gradExpertOut", rows, slots, hidden);
            gradActBuffer = scope.allocate("gradAct", rows, slots, ffn);
            gradHBuffer = scope.allocate("gradH", rows, slots, hWidth);
            gradXsBuffer = scope.allocate("gradXs", rows, slots, hidden);
            gradTopkWeights = scope.allocate("gradTopkWeights", DType.F32, tokens, k);
            gradScores = scope.allocate("gradScores", DType.F32, tokens, e);
            gradLogits = scope.allocate("gradLogits", DType.F32, tokens, e);
            gradLogitsWork = rows == DType.BF16 ? scope.allocate("gradLogits.bf16", DType.BF16, tokens, e) : null;
            gradX = scope.allocate("gradX", rows, tokens, hidden);
        }

        private void selectRows(int rows) {
            xs = xsBuffer.slice(0, rows);
            h = hBuffer.slice(0, rows);
            act = actBuffer.slice(0, rows);
            expertOut = expertOutBuffer.slice(0, rows);
            gradExpertOut = gradExpertOutBuffer.slice(0, rows);
            gradAct = gradActBuffer.slice(0, rows);
            gradH = gradHBuffer.slice(0, rows);
            gradXs = gradXsBuffer.slice(0, rows);
        }

        /** Token count of the last forward (-1 before the first). */
        public int tokens() {
            return tokens;
        }

        /** Output of the last forward. */
        public Tensor output() {
            return afterForward().y;
        }

        public float auxLoss() {
            return afterForward().auxLoss.getFloat(0);
        }

        public float zLoss() {
            return afterForward().zLoss.getFloat(0);
        }

        /** Routed (token, k) slots per logical expert in the last forward, before capacity. */
        public int[] routedCounts() {
            return afterForward().routedCounts.toIntArray();
        }

        public DispatchPlan plan() {
            return afterForward().plan;
        }

        public Tensor topkIds() {
            return afterForward().topkIds;
        }

        public Tensor topkWeights() {
            return afterForward().topkWeights;
        }

        private Workspace afterForward() {
            if (x == null) {
                throw new IllegalStateException("workspace: no completed forward pass");
            }
            return this;
        }

        @Override
        public void close() {
            if (scope != null) {
                scope.close();
            }
            x = null;
        }
    }
}
