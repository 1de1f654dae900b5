package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;
import java.util.stream.IntStream;

/**
 * A Mixture-of-Experts FFN layer, on one device or as one rank of a parallel plan:
 * <pre>
 *   router:   logits = x · W_gate, scores, top-k (ids, weights); aux loss and z-loss
 *   dispatch: remap ids to physical slots (the placement), plan with capacity, permute x to slot order
 *   exchange: rows to the ranks that hold their slots ({@link TokenExchange}; one device: nothing moves)
 *   experts:  grouped FFN  out = act(xs · W1_e) · W2_e of the local slots; partial outputs summed
 *             over the TENSOR group
 *   return:   outputs back to this rank (the exchange again)
 *   combine:  y[t] = sum_j w[t, j] * out[row of (t, j)]
 * </pre>
 * forward caches in a {@link Workspace} exactly what backward needs (a reference to x, the
 * routing, the plan, the dispatched rows and the expert pre-activations); backward mirrors forward
 * step by step, returns the gradient of x and accumulates into the gradients of the gate and of
 * every local expert (call {@link #zeroGrad} between steps). The losses' gradients flow into the
 * router.
 *
 * <p><b>One device</b> ({@link #MoELayer(Backend, Config, long)}): every group has one rank
 * ({@link Groups#NONE}), every expert its own slot. <b>A rank of a plan</b>
 * ({@link #MoELayer(Backend, Config, Groups, ExpertSlots)}; the runtime builds it over its
 * communicators): the experts are sharded over the EXPERT group by the placement, replicated over
 * EXPERT_DATA and tensor-parallel over TENSOR (each rank holds ffn / tp columns of W1 and rows of
 * W2); every rank of a TENSOR group must get the same tokens and output gradients, each rank of
 * the DATA group a different share of the batch. The per-expert routed counts, score sums, token
 * count and z-loss are summed over the DATA group, so the aux and z losses are those of the whole
 * batch, and {@link #reduceGradients} sums the gate's gradient over DATA and the experts' over
 * EXPERT_DATA. Dropless, the outputs and input gradients equal those of one device on the
 * concatenated tokens of the DATA group, given gradY = d(global loss) / dy (gradients are
 * summed over ranks, never averaged). With a capacity factor, capacity applies per source rank
 * before the exchange, as in Megatron-Core: ceil(T_local * K * cf / E) of the rank's own slots
 * per expert.
 *
 * <p><b>Placement</b> ({@link ExpertSlots}): local slot l of EXPERT rank r is physical slot
 * r * slotsPerDevice + l and keeps its own parameter tensors, named after the expert they hold;
 * free slots receive no rows and have no parameters in {@link #parameters()}. A different
 * placement must move the parameters and optimizer state with it: {@link #setPlacement} refuses a
 * change, {@link #applyPlacement} applies one with the moved state. <b>Replicas</b> (dropless
 * only): an expert in several slots gets its (token, k) rows split among the copies, token t of
 * DATA rank r to copy (r + t) mod copies; each copy accumulates the gradient of its own rows.
 *
 * <p>Precision: with {@link Config#dtype()} bf16 (a building block of mixed-precision
 * training, on one device and on a rank of any plan: the exchange moves bf16 rows and the
 * TENSOR sums get bf16 partials) x, y, the expert rows and the gradients of x and of the rows
 * are bf16; the parameters stay f32 masters with f32 gradients, and the gate and expert GEMMs
 * read bf16 working copies of them, which {@link #refreshWorkingCopies} rounds from the masters
 * (call it after every optimizer step, or after writing the masters). The router's logits,
 * scores, top-k and the losses stay f32.
 *
 * <p>A workspace keeps its buffers across calls with the same token count and reallocates them
 * only when it changes (the rows the local experts receive: when a pass receives more).
 * forward(x)/backward(gradY) use the layer's own workspace; a pipeline schedule with several
 * micro-batches in flight gives each one a {@link #newWorkspace()}.
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


    /**
     * The sums and the exchange of a rank of a plan: the DATA group (router statistics, the
     * gate's gradient, replica choice by its rank), the TENSOR group (partial expert outputs and
     * input gradients; its size divides ffn), the EXPERT_DATA group (expert gradients) and the
     * token exchange over the EXPERT group (its size is the placement's device count).
     */
    public record Groups(GroupSum data, GroupSum tensor, GroupSum expertData, TokenExchange expert) {
        /** One device. */
        public static final Groups NONE = new Groups(GroupSum.NONE, GroupSum.NONE, GroupSum.NONE, TokenExchange.LOCAL);

        public Groups {
            Checks.notNull("data", data);
            Checks.notNull("tensor", tensor);
            Checks.notNull("expertData", expertData);
            Checks.notNull("expert", expert);
        }
    }

    /**
     * Fills a local slot with the state of the expert it receives in a placement change:
     * w1/w2's value and gradient must become this rank's TP shard of the expert's parameters and
     * gradients (e.g. received from the rank that held it); the caller moves the optimizer state
     * of the parameters, which are named after the new expert.
     */
    @FunctionalInterface
    public interface SlotLoader {
        void load(int physicalSlot, int expert, Parameter w1, Parameter w2);
    }

    private final Backend backend;
    private final Config config;
    private final Groups groups;
    /**
     * A rank of a plan computes the aux and z losses from statistics summed over the DATA group
     * (in Java, in double); one device keeps the loss kernels' own order. The two differ in the
     * last bits, and each is kept so that runs stay bitwise what they were.
     */
    private final boolean batchStatistics;
    private final int localFfn;
    private final TensorScope params;
    private final Router router;
    private final LoadBalancingLoss losses;
    private final Dispatcher dispatcher;
    /** Dispatches by physical slot ids: used when the placement has replicas. */
    private final Dispatcher slotDispatcher;
    private final Experts experts;
    private final Combiner combiner;
    private final Workspace workspace;
    private ExpertSlots placement;

    /**
     * One device. Allocates and initialises the parameters from seed: the gate first, then each
     * expert's W1 and W2, each uniform in +-1/sqrt(fan_in) (torch.nn.Linear's default).
     */
    public MoELayer(Backend backend, Config config, long seed) {
        this(backend, config, Groups.NONE, ExpertSlots.oneDevice(Checks.notNull("config", config).experts()),
                new SplittableRandom(seed));
    }

    /**
     * A rank of a plan: this rank's slots of placement (devices = the EXPERT group's size), with
     * this rank's TP shard of each. The gate starts at zero and the experts at placeholder values
     * from a fixed generator: load the values next (the runtime loads the full single-device
     * values' shards, so that a hybrid run starts exactly where one device would).
     */
    public MoELayer(Backend backend, Config config, Groups groups, ExpertSlots placement) {
        this(backend, config, groups, placement, null);
    }

    /** seeded: the one device's generator; null for a rank of a plan (placeholder experts, batch statistics). */
    private MoELayer(Backend backend, Config config, Groups groups, ExpertSlots placement, SplittableRandom seeded) {
        this.backend = Checks.notNull("backend", backend);
        this.config = Checks.notNull("config", config);
        this.groups = Checks.notNull("groups", groups);
        this.batchStatistics = seeded == null;
        int tp = groups.tensor().size();
        Checks.require(config.ffn() % tp == 0, "config.ffn: " + config.ffn() + " is not divisible by tp " + tp);
        checkPlacement(placement);
        this.localFfn = config.ffn() / tp;
        this.params = TensorScope.shared(backend);
        Parameter gate = Parameter.allocate(params, "router.weight", config.hidden(), config.experts());
        if (seeded != null) {
            Experts.initUniform(gate.value(), config.hidden(), seeded);
        }
        Tensor gateWork = config.dtype() == DType.BF16
                ? params.allocate("router.weight.bf16", DType.BF16, config.hidden(), config.experts()) : null;
        this.router = new Router(backend, gate, gateWork, config.topK(), config.scoreFunction(), config.renormalize());
        router.refreshWorkingCopy();
        this.losses = new LoadBalancingLoss(backend, config.topK(), config.auxLossCoeff(), config.zLossCoeff());
        this.placement = placement;
        this.dispatcher = new Dispatcher(backend, params, config.experts(), placement.physicalSlots(), config.topK(),
                config.capacityFactor(), config.dropPolicy());
        dispatcher.setRemap(remap(placement));
        this.slotDispatcher = new Dispatcher(backend, params, placement.physicalSlots(), placement.physicalSlots(),
                config.topK(), Config.DROPLESS, config.dropPolicy());
        this.experts = new Experts(backend, params, placement.slotsPerDevice(), config.hidden(), localFfn,
                config.activation(), config.dtype(), seeded != null ? seeded : new SplittableRandom(0));
        this.combiner = new Combiner(backend);
        this.workspace = new Workspace();
    }

    public Backend backend() {
        return backend;
    }

    public Config config() {
        return config;
    }

    public Groups groups() {
        return groups;
    }

    public Router router() {
        return router;
    }

    public Dispatcher dispatcher() {
        return dispatcher;
    }

    /** The experts of this rank's local slots (this rank's TP shards); one device: expert e in slot e. */
    public Experts experts() {
        return experts;
    }

    public ExpertSlots placement() {
        return placement;
    }

    /** router.weight, then experts.e.w1, experts.e.w2 of each occupied local slot in slot order. */
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>();
        all.add(router.weight());
        all.addAll(expertParameters());
        return all;
    }

    /** The parameters of the occupied local slots, named after their experts: their gradients are summed over EXPERT_DATA. */
    public List<Parameter> expertParameters() {
        List<Parameter> all = new ArrayList<>();
        for (int l = 0; l < localSlots(); l++) {
            if (placement.expertAt(physicalSlot(l)) != ExpertSlots.FREE) {
                all.addAll(slotParameters(l));
            }
        }
        return all;
    }

    /**
     * w1 and w2 of local slot l (physical slot rank * slotsPerDevice + l), whatever it holds — a
     * free slot's are named "experts.free.w1" — for moving and copying expert state.
     */
    public List<Parameter> slotParameters(int localSlot) {
        Checks.require(localSlot >= 0 && localSlot < localSlots(),
                "localSlot: must be in [0, " + localSlots() + "), got " + localSlot);
        int e = placement.expertAt(physicalSlot(localSlot));
        String name = "experts." + (e == ExpertSlots.FREE ? "free" : Integer.toString(e));
        return List.of(named(experts.w1(localSlot), name + ".w1"), named(experts.w2(localSlot), name + ".w2"));
    }

    /** Logical expert held by each local slot (FREE for an empty one). */
    public int[] localExperts() {
        return IntStream.range(0, localSlots()).map(l -> placement.expertAt(physicalSlot(l))).toArray();
    }

    public void zeroGrad() {
        router.weight().zeroGrad();
        experts.parameters().forEach(Parameter::zeroGrad);
    }

    /**
     * zeroGrad for a step whose next call on this layer is {@link #backward}: the router's
     * gradient is zeroed, the experts' are left undefined and written, not added to, by that
     * backward ({@link Experts#discardGradients}) — a pass over every expert gradient less (16 ms
     * of mixtral/4's ~850 ms bf16 training step on a 2-core Zen 5). Read no gradient in between.
     */
    public void discardGradients() {
        router.weight().zeroGrad();
        experts.discardGradients();
    }

    /**
     * Sums the gradients of the last backward passes over the ranks that share the weights: the
     * gate over the DATA group, each local expert over the EXPERT_DATA group (nothing on one
     * device). Collective: every rank of the stage calls it after its backward passes.
     */
    public void reduceGradients() {
        groups.data().sum(router.weight().grad());
        for (Parameter p : expertParameters()) {
            groups.expertData().sum(p.grad());
        }
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
     * The same for local slot l's expert weights only (after writing that slot's masters: a
     * replica's, copied from its owner).
     */
    public void refreshSlotWorkingCopies(int localSlot) {
        Checks.require(localSlot >= 0 && localSlot < localSlots(),
                "localSlot: must be in [0, " + localSlots() + "), got " + localSlot);
        experts.refreshWorkingCopies(localSlot);
    }

    /**
     * Gives action each master parameter that has a bf16 working copy, with the copy (an
     * optimizer that writes the copies itself: {@code AdamW.step} with working copies); nothing
     * for an f32 layer.
     */
    public void forEachWorkingCopy(BiConsumer<Parameter, Tensor> action) {
        router.forEachWorkingCopy(action);
        experts.forEachWorkingCopy(action);
    }

    /**
     * One device: places logical expert e in slot remap[e] (a permutation of the experts) without
     * moving any state — the dispatcher groups rows by slot and the experts' GEMM tables follow,
     * so the layer computes the same function under any remap. Call it between passes, not
     * between a forward and its backward (the same holds for {@link Experts#setExpert}).
     */
    public void setRemap(int[] remap) {
        Checks.require(placement.devices() == 1 && IntStream.range(0, placement.physicalSlots())
                .allMatch(p -> placement.expertAt(p) == p),
                "setRemap: only for a one-device layer with expert e in slot e, this one has " + placement);
        dispatcher.setRemap(remap);
        int[] expertOfSlot = new int[config.experts()];
        for (int e = 0; e < remap.length; e++) {
            expertOfSlot[remap[e]] = e;
        }
        experts.setSlotOrder(expertOfSlot);
    }

    // ---- placement ----

    /** Physical slots (of every device) whose expert differs between the current placement and next, ascending. */
    public int[] changedSlots(ExpertSlots next) {
        checkPlacement(next);
        return IntStream.range(0, placement.physicalSlots())
                .filter(p -> placement.expertAt(p) != next.expertAt(p)).toArray();
    }

    /**
     * Accepts next only if it places every expert as the current placement does: a different one
     * would leave each moved expert's parameters, gradients and optimizer state in its old slot.
     * Use {@link #applyPlacement} to change placement with the state.
     */
    public void setPlacement(ExpertSlots next) {
        int[] changed = changedSlots(next);
        if (changed.length > 0) {
            throw new IllegalStateException("placement: changing it without moving state would move the experts of "
                    + "physical slots " + Arrays.toString(changed) + " away from their parameters and optimizer "
                    + "state; use applyPlacement(next, loader) with the moved state (current " + placement + ", next "
                    + next + ")");
        }
    }

    /**
     * Changes the placement between steps (not between a forward and its backward): every local
     * slot that receives a different expert is filled by loader (value, gradient — and, by the
     * caller, optimizer state); a slot that becomes free is zeroed, and a bf16 layer's working
     * copies are rounded from the masters the loader wrote. Every rank of the stage applies the
     * same placement at the same step.
     */
    public void applyPlacement(ExpertSlots next, SlotLoader loader) {
        Checks.notNull("loader", loader);
        Checks.require(IntStream.range(0, localSlots()).allMatch(l -> experts.slotOrder()[l] == l),
                "placement: the layer has a remap (setRemap); set the identity remap before changing placement");
        int[] changed = changedSlots(next);
        int rank = groups.expert().rank();
        for (int p : changed) {
            if (next.deviceOf(p) != rank) {
                continue;
            }
            int l = p - rank * localSlots();
            int e = next.expertAt(p);
            Parameter w1 = experts.w1(l);
            Parameter w2 = experts.w2(l);
            if (e == ExpertSlots.FREE) {
                w1.value().fill(0f);
                w2.value().fill(0f);
                w1.zeroGrad();
                w2.zeroGrad();
            } else {
                loader.load(p, e, named(w1, "experts." + e + ".w1"), named(w2, "experts." + e + ".w2"));
            }
        }
        placement = next;
        dispatcher.setRemap(remap(next));
        experts.refreshWorkingCopies();
    }

    /** Same experts, one device per EXPERT rank, the layer's slots per device (once it has a placement); replicas only dropless. */
    private void checkPlacement(ExpertSlots p) {
        Checks.notNull("placement", p);
        int ep = groups.expert().size();
        Checks.require(p.experts() == config.experts() && p.devices() == ep,
                "placement: expected " + config.experts() + " experts on ep=" + ep + " devices, got " + p);
        Checks.require(placement == null || p.slotsPerDevice() == placement.slotsPerDevice(),
                "placement: expected " + (placement == null ? 0 : placement.slotsPerDevice())
                        + " slots per device (the layer's), got " + p);
        for (int e = 0; e < p.experts(); e++) {
            if (p.copies(e) > 1 && !config.dropless()) {
                throw new IllegalArgumentException("placement: expert " + e + " is in slots "
                        + Arrays.toString(p.slotsOf(e)) + "; replicated experts need a dropless layer (capacity "
                        + "factor " + config.capacityFactor() + ")");
            }
        }
    }

    /** Logical expert -> its (first) physical slot, for the dispatcher. */
    private static int[] remap(ExpertSlots p) {
        int[] remap = new int[p.experts()];
        Arrays.setAll(remap, e -> p.slotsOf(e)[0]);
        return remap;
    }

    private int localSlots() {
        return placement.slotsPerDevice();
    }

    private int physicalSlot(int localSlot) {
        return groups.expert().rank() * localSlots() + localSlot;
    }

    /** p itself when it already has the name (one device), else a view of its tensors under it. */
    private static Parameter named(Parameter p, String name) {
        return p.name().equals(name) ? p : new Parameter(name, p.value(), p.grad());
    }

    // ---- forward / backward ----

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
     * y [T, hidden] for x [T, hidden] (of the config's dtype, finite; a rank of a plan: this
     * rank's tokens). x must stay unchanged until the backward of this pass; y belongs to ws and
     * is overwritten by its next forward. Collective over the DATA, EXPERT and TENSOR groups.
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
        if (batchStatistics) {
            reduceRouterStatistics(ws);
        }
        planDispatch(ws);
        ws.selectRows(ws.plan.rows());
        dispatcher.permute(x, ws.plan, ws.xs);
        ws.expertIn = ws.exchange.dispatch(ws.plan, ws.xs);
        Tensor out = ws.exchange.outputs(ws.expertOut);
        int rows = ws.expertIn.dim(0);
        if (rows > 0) {
            ws.selectExpertRows(rows);
            experts.forward(ws.exchange.offsets(), ws.expertIn, ws.h, ws.act, out);
            groups.tensor().sum(out);
        }
        ws.exchange.combine(out, ws.expertOut);
        combiner.forward(ws.expertOut, ws.topkWeights, ws.plan, ws.y);
        ws.x = x;
        return ws.y;
    }

    /**
     * Backward of ws's last forward: returns gradX [T, hidden] (owned by ws; on a rank of a plan
     * the full gradient, the same on every rank of the TENSOR group) and accumulates this rank's
     * parameter gradients (a rank of a plan sums them with {@link #reduceGradients()}). lossScale
     * is d(total loss) / d(aux loss + z-loss) — 1 when they are simply added to the training
     * loss, the same scale as gradY's otherwise. Collective over the EXPERT and TENSOR groups.
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

        // the rows' gradients, then their input gradients, share one buffer: each is dead once sent on
        combiner.backward(gradY, ws.expertOut, ws.topkWeights, ws.plan, ws.gradRows, ws.gradTopkWeights);
        Tensor gradOut = ws.exchange.dispatchGradient(ws.gradRows);
        Tensor gradIn = ws.exchange.inputGradients(ws.gradRows);
        if (ws.expertIn.dim(0) > 0) {
            experts.backward(ws.exchange.offsets(), ws.expertIn, ws.h, ws.act, gradOut, ws.gradAct, ws.gradH, gradIn);
            groups.tensor().sum(gradIn);
        } else {
            experts.backwardWithoutRows();
        }
        ws.exchange.combineGradient(gradIn, ws.gradRows);
        dispatcher.permuteBackward(ws.gradRows, ws.plan, ws.gradX);

        float zScale = lossScale;
        if (batchStatistics) {
            fillAuxGradient(ws, lossScale);
            zScale = lossScale * ws.tokens / ws.globalTokens; // the local tokens' share of the batch's mean
        } else {
            losses.backwardAux(ws.routedCounts, lossScale, ws.gradScores);
        }
        router.backwardScores(ws.scores, ws.topkIds, ws.gradTopkWeights, ws.gradScores, ws.gradLogits);
        losses.backwardZ(ws.logits, zScale, ws.gradLogits);
        router.backwardGate(ws.x, ws.gradLogits, ws.gradLogitsWork, ws.gradX, true);
        return ws.gradX;
    }

    /**
     * The dispatch plan of ws's routing: through the remap when every expert has one slot, else
     * by the slot of each (token, k) row's copy: copy (dataRank + t) mod copies of its expert.
     */
    private void planDispatch(Workspace ws) {
        if (IntStream.range(0, placement.experts()).allMatch(e -> placement.copies(e) == 1)) {
            dispatcher.plan(ws.topkIds, ws.topkWeights, ws.plan);
            return;
        }
        int k = config.topK();
        int[][] copies = new int[config.experts()][];
        Arrays.setAll(copies, placement::slotsOf);
        int[] ids = ws.topkIds.toIntArray();
        int[] slots = new int[ids.length];
        int rank = groups.data().rank();
        for (int i = 0; i < ids.length; i++) {
            int[] c = copies[ids[i]];
            slots[i] = c[(rank + i / k) % c.length];
        }
        ws.slotIds.copyFrom(slots);
        slotDispatcher.plan(ws.slotIds, ws.topkWeights, ws.plan);
    }

    /**
     * Sums over the DATA group what the aux and z losses of the whole batch need: the routed
     * slots per expert, the token count, the per-expert score sums and the local z-loss times the
     * local token count; then computes both losses as pmoe_aux_loss_forward and
     * pmoe_z_loss_forward define them on the concatenated tokens.
     */
    private void reduceRouterStatistics(Workspace ws) {
        int e = config.experts();
        int[] counts = Arrays.copyOf(ws.routedCounts.toIntArray(), e + 1);
        counts[e] = ws.tokens;
        ws.countStats.copyFrom(counts);
        backend.gemm(false, false, 1f, ws.ones.reshape(1, ws.tokens), ws.scores, 0f, ws.scoreSums);
        float[] sums = Arrays.copyOf(ws.scoreSums.toFloatArray(), e + 1);
        sums[e] = ws.zLoss.getFloat(0) * ws.tokens;
        ws.scoreStats.copyFrom(sums);
        groups.data().sum(ws.countStats);
        groups.data().sum(ws.scoreStats);
        ws.globalCounts = Arrays.copyOf(ws.countStats.toIntArray(), e);
        ws.globalTokens = ws.countStats.getInt(e);
        float[] globalSums = ws.scoreStats.toFloatArray();
        double dot = 0;
        for (int i = 0; i < e; i++) {
            dot += (double) ws.globalCounts[i] * globalSums[i];
        }
        double slots = (double) ws.globalTokens * config.topK();
        ws.batchAux = (float) (config.auxLossCoeff() * e * dot / (slots * ws.globalTokens));
        ws.batchZ = globalSums[e] / ws.globalTokens;
    }

    /** gradScores [T, E]: every row is lossScale * d aux / d scores[t, :] = lossScale * coeff * E * counts / (T * K * T), global T. */
    private void fillAuxGradient(Workspace ws, float lossScale) {
        int e = config.experts();
        double slots = (double) ws.globalTokens * config.topK();
        float[] row = new float[e];
        for (int i = 0; i < e; i++) {
            row[i] = (float) ((double) lossScale * config.auxLossCoeff() * e * ws.globalCounts[i]
                    / (slots * ws.globalTokens));
        }
        ws.auxGradRow.copyFrom(row);
        backend.gemm(false, false, 1f, ws.ones.reshape(ws.tokens, 1), ws.auxGradRow, 0f, ws.gradScores);
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
     * The buffers of one forward/backward pass: token-sized ones, allocated for one token count T
     * and reused while T stays the same (the dispatched rows with room for all T * K slots; each
     * pass uses views of the first plan.rows() of them), and the expert-side ones, sized for the
     * rows the local slots receive and grown when a pass receives more.
     */
    public final class Workspace implements AutoCloseable {
        private TensorScope scope;
        private TensorScope rowScope;
        private int tokens = -1;
        private int rowCapacity = -1;
        private Tensor x;
        private final TokenExchange.Pass exchange;

        // router and losses
        private Tensor logits;
        private Tensor scores;
        private Tensor topkWeights;
        private Tensor topkIds;
        private Tensor slotIds;
        /** This rank's tokens' aux and z losses (the kernels'). */
        private Tensor auxLoss;
        private Tensor zLoss;
        private Tensor routedCounts;
        // a rank of a plan: the statistics summed over the DATA group, and the batch's losses
        private Tensor ones;
        private Tensor scoreSums;
        private Tensor countStats;
        private Tensor scoreStats;
        private Tensor auxGradRow;
        private int[] globalCounts;
        private int globalTokens;
        private float batchAux;
        private float batchZ;
        // dispatch: full-size buffers and this pass's views of their first rows
        private DispatchPlan plan;
        private Tensor xsBuffer;
        private Tensor expertOutBuffer;
        private Tensor gradRowsBuffer;
        private Tensor xs;
        private Tensor expertOut;
        private Tensor gradRows;
        private Tensor y;
        // the expert side: the exchange's input rows, and buffers grown to the rows received
        private Tensor expertIn;
        private Tensor hBuffer;
        private Tensor actBuffer;
        private Tensor gradActBuffer;
        private Tensor gradHBuffer;
        private Tensor h;
        private Tensor act;
        private Tensor gradAct;
        private Tensor gradH;
        // backward
        private Tensor gradTopkWeights;
        private Tensor gradScores;
        private Tensor gradLogits;
        /** gradLogits rounded to bf16 for the router's bf16 GEMMs (bf16 only). */
        private Tensor gradLogitsWork;
        private Tensor gradX;

        private Workspace() {
            this.exchange = groups.expert().newPass(backend, config.dtype(), config.hidden(), localSlots());
        }

        private MoELayer layer() {
            return MoELayer.this;
        }

        private void ensure(int tokenCount) {
            if (tokenCount == tokens && scope.isOpen()) {
                return;
            }
            closeScope();
            scope = TensorScope.shared(backend);
            tokens = tokenCount;
            int e = config.experts();
            int k = config.topK();
            int hidden = config.hidden();
            int slots = tokens * k;
            logits = scope.allocate("logits", DType.F32, tokens, e);
            scores = scope.allocate("scores", DType.F32, tokens, e);
            topkWeights = scope.allocate("topkWeights", DType.F32, tokens, k);
            topkIds = scope.allocate("topkIds", DType.I32, tokens, k);
            slotIds = scope.allocate("slotIds", DType.I32, tokens, k);
            auxLoss = scope.allocate("auxLoss", DType.F32, 1);
            zLoss = scope.allocate("zLoss", DType.F32, 1);
            routedCounts = scope.allocate("routedCounts", DType.I32, e);
            if (batchStatistics) {
                ones = scope.allocate("ones", DType.F32, tokens);
                ones.fill(1f);
                scoreSums = scope.allocate("scoreSums", DType.F32, 1, e);
                countStats = scope.allocate("countStats", DType.I32, e + 1);
                scoreStats = scope.allocate("scoreStats", DType.F32, e + 1);
                auxGradRow = scope.allocate("auxGradRow", DType.F32, 1, e);
            }
            plan = dispatcher.newPlan(scope, tokens);
            DType rows = config.dtype();
            xsBuffer = scope.allocate("xs", rows, slots, hidden);
            expertOutBuffer = scope.allocate("expertOut", rows, slots, hidden);
            gradRowsBuffer = scope.allocate("gradRows", rows, slots, hidden);
            y = scope.allocate("y", rows, tokens, hidden);
            gradTopkWeights = scope.allocate("gradTopkWeights", DType.F32, tokens, k);
            gradScores = scope.allocate("gradScores", DType.F32, tokens, e);
            gradLogits = scope.allocate("gradLogits", DType.F32, tokens, e);
            gradLogitsWork = rows == DType.BF16 ? scope.allocate("gradLogits.bf16", DType.BF16, tokens, e) : null;
            gradX = scope.allocate("gradX", rows, tokens, hidden);
        }

        private void selectRows(int rows) {
            xs = xsBuffer.slice(0, rows);
            expertOut = expertOutBuffer.slice(0, rows);
            gradRows = gradRowsBuffer.slice(0, rows);
        }

        private void selectExpertRows(int rows) {
            if (rows > rowCapacity) {
                if (rowScope != null) {
                    rowScope.close();
                }
                rowScope = TensorScope.shared(backend);
                rowCapacity = rows;
                int hWidth = config.activation().inputWidth(localFfn);
                DType dtype = config.dtype();
                hBuffer = rowScope.allocate("h", dtype, rowCapacity, hWidth);
                actBuffer = rowScope.allocate("act", dtype, rowCapacity, localFfn);
                gradActBuffer = rowScope.allocate("gradAct", dtype, rowCapacity, localFfn);
                gradHBuffer = rowScope.allocate("gradH", dtype, rowCapacity, hWidth);
            }
            h = hBuffer.slice(0, rows);
            act = actBuffer.slice(0, rows);
            gradAct = gradActBuffer.slice(0, rows);
            gradH = gradHBuffer.slice(0, rows);
        }

        /** Token count of the last forward (-1 before the first); a rank of a plan: its own tokens. */
        public int tokens() {
            return tokens;
        }

        /** Output of the last forward. */
        public Tensor output() {
            return afterForward().y;
        }

        /** The aux loss (a rank of a plan: the whole batch's, over the DATA group), scaled by its coefficient. */
        public float auxLoss() {
            return batchStatistics ? afterForward().batchAux : afterForward().auxLoss.getFloat(0);
        }

        /** The z-loss (a rank of a plan: the whole batch's), scaled by its coefficient. */
        public float zLoss() {
            return batchStatistics ? afterForward().batchZ : afterForward().zLoss.getFloat(0);
        }

        /** Routed (token, k) slots per logical expert from this rank's tokens in the last forward, before capacity. */
        public int[] routedCounts() {
            return afterForward().routedCounts.toIntArray();
        }

        /** Routed slots per logical expert of the whole batch (summed over the DATA group). */
        public int[] globalRoutedCounts() {
            return batchStatistics ? afterForward().globalCounts.clone() : routedCounts();
        }

        /** Token rows this rank's local slots received in the last forward (from every EXPERT rank). */
        public int receivedRows() {
            return afterForward().expertIn.dim(0);
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

        private void closeScope() {
            if (scope != null) {
                scope.close();
            }
        }

        @Override
        public void close() {
            closeScope();
            if (rowScope != null) {
                rowScope.close();
                rowCapacity = -1;
            }
            exchange.close();
            x = null;
        }
    }
}
