package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.Combiner;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.DispatchPlan;
import dev.panamoe.ops.Dispatcher;
import dev.panamoe.ops.Experts;
import dev.panamoe.ops.LoadBalancingLoss;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Router;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * The MoE FFN of one block on one rank of a plan (ep, edp, tp) — {@link MoELayer}'s
 * computation spread over the {@link ProcessGroups}:
 * <pre>
 *   router    replicated gate; logits, scores, top-k of the local tokens (as MoELayer)
 *   losses    per-expert routed counts, score sums, token count and z-loss all-reduced over
 *             the DATA group, so aux and z losses are those of the concatenated batch
 *   dispatch  logical expert -> physical slot (the placement), stable sort by slot; slots are
 *             numbered device by device, so the rows for EP rank d are contiguous
 *   exchange  per-slot row counts all-to-all in the EXPERT group, then all-to-allv of the rows
 *   experts   received rows regrouped by local slot; grouped FFN of this rank's TP shard of each
 *             slot's expert; partial outputs summed over the TENSOR group
 *   return    rows back to source order, all-to-allv back, combine with the top-k weights
 * </pre>
 * Backward mirrors forward step by step (the expert input gradient is summed over the TENSOR
 * group). Every rank of a TENSOR group must get the same tokens and output gradients (as in
 * Megatron's tensor parallelism); each rank of a DATA group holds a different share of the batch.
 *
 * <p><b>Equivalence.</b> Dropless, the outputs and input gradients equal those of one
 * MoELayer on the concatenated tokens of the DATA group (in data-index order), its aux and z
 * losses are that layer's, and after {@link #reduceGradients()} the gate gradient and the
 * gathered expert gradients are that layer's — provided gradY is d(global loss) / dy, i.e. the
 * gradient of the loss of the whole batch (e.g. the cross-entropy summed over local tokens and
 * divided by the global token count): gradients are <em>summed</em> over ranks, never averaged.
 *
 * <p><b>Capacity.</b> With a capacity factor cf, capacity is applied per source rank before
 * the exchange, as in Megatron-Core: each rank keeps at most ceil(T_local * K * cf / E) of its own
 * (token, k) slots per expert (E logical experts; free slots do not change it) by the drop
 * policy. Outputs therefore equal those of one MoELayer run on each rank's tokens separately
 * (not on the concatenated batch, whose capacity would be global).
 *
 * <p><b>Placement.</b> The layer holds the physical slots of its EP index under an
 * {@link ExpertPlacement} (devices = ep): local slot l is physical slot epIndex * slotsPerDevice + l
 * and keeps its own parameter tensors; its name follows the expert it holds ("experts.5.w1").
 * Free slots receive no rows and have no parameters in {@link #parameters()}. A different
 * placement must move parameters and optimizer state with it: {@link #setPlacement} refuses a
 * change, {@link #applyPlacement} applies one with the moved state.
 *
 * <p><b>Replicas</b> (dropless only). An expert in several slots gets its (token, k) rows split
 * among the copies deterministically: token t of DATA rank r goes to copy (r + t) mod copies (in
 * slot order). Every copy must hold the expert's weights; each copy accumulates the gradient of
 * its own rows, so the expert's gradient is the sum over its copies (the trainer sums them into
 * the owner's before the optimizer step). Outputs and input gradients equal the unreplicated layer's.
 *
 * <p>Parameters are not initialised by the constructor's own generator: they come from the
 * full single-device values ({@link FullParameters}), sharded by {@link ExpertShards}, so that a
 * hybrid run starts exactly where one device would.
 */
public final class DistributedMoELayer implements AutoCloseable {

    /**
     * The full (single-device, unsharded) value of a layer parameter, row-major, by its name
     * ("gate" [hidden, experts], "experts.e.w1" [hidden, act.inputWidth(ffn)], "experts.e.w2"
     * [ffn, hidden]) and full shape.
     */
    @FunctionalInterface
    public interface FullParameters {
        float[] value(String name, int[] shape);

        /** The values of a single-device layer (its "router.weight" is the "gate"). */
        static FullParameters of(MoELayer layer) {
            return (name, shape) -> {
                if (name.equals(GATE)) {
                    return layer.router().weight().value().toFloatArray();
                }
                int e = expertOfName(name);
                return (name.endsWith(".w1") ? layer.experts().w1(e) : layer.experts().w2(e)).value().toFloatArray();
            };
        }
    }

    /**
     * Fills a local slot with the state of the expert it receives in a placement change:
     * w1/w2's value and gradient must become this rank's TP shard of logical expert's
     * parameters and gradients (e.g. received from the rank that held it); the caller moves the
     * optimizer state of the parameters, which are named after the new expert.
     */
    @FunctionalInterface
    public interface SlotLoader {
        void load(int physicalSlot, int expert, Parameter w1, Parameter w2);
    }

    public static final String GATE = "gate";

    private final Backend backend;
    private final MoELayer.Config config;
    private final Communicator tensorGroup;
    private final Communicator expertGroup;
    private final Communicator expertDataGroup;
    private final Communicator dataGroup;
    private final int tp;
    private final int tpIndex;
    private final int ep;
    private final int epIndex;
    private final int localFfn;
    private final TensorScope params;
    private final Router router;
    private final LoadBalancingLoss losses;
    private final Experts experts;
    private final Combiner combiner;
    private final Workspace workspace;
    private final Dispatcher dispatcher;
    /** Dispatches by physical slot ids: used when the placement has replicas. */
    private final Dispatcher slotDispatcher;
    private ExpertPlacement placement;

    /** The layer under the identity placement (experts / ep consecutive experts per EP rank). */
    public DistributedMoELayer(Backend backend, MoELayer.Config config, ProcessGroups groups, FullParameters init) {
        this(backend, config, groups, identity(config, groups), init);
    }

    private static ExpertPlacement identity(MoELayer.Config config, ProcessGroups groups) {
        return ExpertPlacement.identity(notNull("config", config).experts(), notNull("groups", groups).plan().ep(), 0);
    }

    public DistributedMoELayer(Backend backend, MoELayer.Config config, ProcessGroups groups, ExpertPlacement placement,
            FullParameters init) {
        this.backend = notNull("backend", backend);
        this.config = notNull("config", config);
        notNull("groups", groups);
        this.tensorGroup = groups.tensor();
        this.expertGroup = groups.expert();
        this.expertDataGroup = groups.expertData();
        this.dataGroup = groups.data();
        this.tp = tensorGroup.size();
        this.tpIndex = tensorGroup.rank();
        this.ep = expertGroup.size();
        this.epIndex = expertGroup.rank();
        require(config.dtype() == DType.F32, "config.dtype: a rank of a parallel plan runs in f32 only, got "
                + config.dtype() + " (bf16 is the single-device MoELayer's until issue 10 merges the two)");
        require(config.ffn() % tp == 0, "config.ffn: " + config.ffn() + " is not divisible by tp " + tp);
        checkPlacement(placement);
        this.localFfn = config.ffn() / tp;
        this.params = TensorScope.shared(backend);
        Parameter gate = Parameter.allocate(params, GATE, config.hidden(), config.experts());
        this.router = new Router(backend, gate, config.topK(), config.scoreFunction(), config.renormalize());
        this.losses = new LoadBalancingLoss(backend, config.topK(), config.auxLossCoeff(), config.zLossCoeff());
        // placeholder values from a fixed generator, replaced by loadParameters below
        this.experts = new Experts(backend, params, placement.slotsPerDevice(), config.hidden(), localFfn,
                config.activation(), new SplittableRandom(0));
        this.combiner = new Combiner(backend);
        this.placement = placement;
        this.dispatcher = new Dispatcher(backend, params, config.experts(), placement.physicalSlots(), config.topK(),
                config.capacityFactor(), config.dropPolicy());
        dispatcher.setRemap(remap(placement));
        this.slotDispatcher = new Dispatcher(backend, params, placement.physicalSlots(), placement.physicalSlots(),
                config.topK(), MoELayer.Config.DROPLESS, config.dropPolicy());
        this.workspace = new Workspace();
        loadParameters(notNull("init", init));
    }

    public MoELayer.Config config() {
        return config;
    }

    public ExpertPlacement placement() {
        return placement;
    }

    /** Logical expert held by each local slot (FREE = -1 for an empty one). */
    public int[] localExperts() {
        return IntStream.range(0, localSlots()).map(l -> placement.expertAt(physicalSlot(l))).toArray();
    }

    public Parameter gate() {
        return router.weight();
    }

    /** "gate", then "experts.e.w1", "experts.e.w2" of each occupied local slot (this rank's TP shards). */
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>();
        all.add(gate());
        all.addAll(expertParameters());
        return all;
    }

    /** The local expert shards: their gradients are summed over the EXPERT_DATA group. */
    public List<Parameter> expertParameters() {
        List<Parameter> all = new ArrayList<>();
        for (int l = 0; l < localSlots(); l++) {
            int e = placement.expertAt(physicalSlot(l));
            if (e != ExpertPlacement.FREE) {
                all.add(named(experts.w1(l), "experts." + e + ".w1"));
                all.add(named(experts.w2(l), "experts." + e + ".w2"));
            }
        }
        return all;
    }

    /**
     * w1 and w2 of local slot l (physical slot epIndex * slotsPerDevice + l), whatever it holds — a
     * free slot's are zeros named "experts.free.w1" — for moving and copying expert state.
     */
    public List<Parameter> slotParameters(int localSlot) {
        int e = placement.expertAt(physicalSlot(localSlot));
        String name = "experts." + (e == ExpertPlacement.FREE ? "free" : Integer.toString(e));
        return List.of(named(experts.w1(localSlot), name + ".w1"), named(experts.w2(localSlot), name + ".w2"));
    }

    public void zeroGrad() {
        gate().zeroGrad();
        experts.parameters().forEach(Parameter::zeroGrad);
    }

    /**
     * Sums the gradients of the last backward passes over the ranks that share the weights:
     * the gate over the DATA group, each local expert shard over the EXPERT_DATA group.
     * Collective: every rank of the stage calls it after its backward passes.
     */
    public void reduceGradients() {
        if (dataGroup.size() > 1) {
            dataGroup.allReduce(gate().grad());
        }
        if (expertDataGroup.size() > 1) {
            for (Parameter p : expertParameters()) {
                expertDataGroup.allReduce(p.grad());
            }
        }
    }

    /**
     * Sets the gate and this rank's shards of its experts from the full values (gradients are
     * left as they are). GptMoeModel-style initialisation: pass the model's by-name values.
     */
    public void loadParameters(FullParameters full) {
        notNull("full", full);
        gate().value().copyFrom(fullValue(full, GATE, config.hidden(), config.experts()));
        for (int l = 0; l < localSlots(); l++) {
            int e = placement.expertAt(physicalSlot(l));
            if (e != ExpertPlacement.FREE) {
                loadExpertShard(l, e, full);
            }
        }
    }

    private void loadExpertShard(int localSlot, int expert, FullParameters full) {
        int hidden = config.hidden();
        int ffn = config.ffn();
        float[] w1 = fullValue(full, "experts." + expert + ".w1", hidden, config.activation().inputWidth(ffn));
        float[] w2 = fullValue(full, "experts." + expert + ".w2", ffn, hidden);
        experts.w1(localSlot).value().copyFrom(ExpertShards.shardW1(w1, hidden, ffn, config.activation(), tpIndex, tp));
        experts.w2(localSlot).value().copyFrom(ExpertShards.shardW2(w2, ffn, hidden, tpIndex, tp));
    }

    private static float[] fullValue(FullParameters full, String name, int... shape) {
        float[] v = full.value(name, shape.clone());
        long n = (long) shape[0] * shape[1];
        require(v != null && v.length == n, "full." + name + ": expected " + n + " values for shape "
                + Arrays.toString(shape) + ", got " + (v == null ? "null" : v.length));
        return v;
    }

    // ---- placement ----

    /** Physical slots (of every EP rank) whose expert differs between the current placement and next, ascending. */
    public int[] changedSlots(ExpertPlacement next) {
        checkPlacement(next);
        return IntStream.range(0, placement.physicalSlots())
                .filter(p -> placement.expertAt(p) != next.expertAt(p)).toArray();
    }

    /**
     * Accepts next only if it equals the current placement: a different one would leave each
     * moved expert's parameters, gradients and optimizer state in its old slot. Use
     * {@link #applyPlacement} to change placement with the state.
     */
    public void setPlacement(ExpertPlacement next) {
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
     * caller, optimizer state); a slot that becomes free is zeroed. Every rank of the stage
     * applies the same placement at the same step.
     */
    public void applyPlacement(ExpertPlacement next, SlotLoader loader) {
        notNull("loader", loader);
        int[] changed = changedSlots(next);
        for (int p : changed) {
            if (next.deviceOf(p) != epIndex) {
                continue;
            }
            int l = p - epIndex * localSlots();
            int e = next.expertAt(p);
            Parameter w1 = experts.w1(l);
            Parameter w2 = experts.w2(l);
            if (e == ExpertPlacement.FREE) {
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
    }

    /** Same experts, ep devices, the layer's slots per device (once it has a placement); replicas only dropless. */
    private void checkPlacement(ExpertPlacement p) {
        notNull("placement", p);
        if (p.experts() != config.experts() || p.devices() != ep) {
            throw new IllegalArgumentException("placement: expected " + config.experts() + " experts on ep=" + ep
                    + " devices, got " + p);
        }
        if (placement != null && p.slotsPerDevice() != placement.slotsPerDevice()) {
            throw new IllegalArgumentException("placement: expected " + placement.slotsPerDevice()
                    + " slots per device (the layer's), got " + p);
        }
        for (int e = 0; e < p.experts(); e++) {
            if (p.copies(e) > 1 && config.capacityFactor() != MoELayer.Config.DROPLESS) {
                throw new IllegalArgumentException("placement: expert " + e + " is in slots "
                        + Arrays.toString(p.slotsOf(e)) + "; replicated experts need a dropless layer (capacity "
                        + "factor " + config.capacityFactor() + ")");
            }
        }
    }

    /** Logical expert -> its physical slot, for the dispatcher. */
    private static int[] remap(ExpertPlacement p) {
        int[] remap = new int[p.experts()];
        Arrays.setAll(remap, e -> p.slotsOf(e)[0]);
        return remap;
    }

    private int localSlots() {
        return placement.slotsPerDevice();
    }

    private int physicalSlot(int localSlot) {
        return epIndex * localSlots() + localSlot;
    }

    private static Parameter named(Parameter p, String name) {
        return new Parameter(name, p.value(), p.grad());
    }

    private static int expertOfName(String name) {
        String[] parts = name.split("\\.");
        require(parts.length == 3 && parts[0].equals("experts"), "name: not an expert parameter: " + name);
        return Integer.parseInt(parts[1]);
    }

    // ---- forward / backward ----

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
     * y [T, hidden] for this rank's tokens x [T, hidden] (T >= 1, f32, finite; the same on every
     * rank of the TENSOR group). Collective over the DATA, EXPERT and TENSOR groups. x must stay
     * unchanged until the backward of this pass; y belongs to ws.
     */
    public Tensor forward(Tensor x, Workspace ws) {
        checkOwn(ws);
        checkActivations("x", x, -1);
        requireFinite("x", x);
        ws.ensure(x.dim(0));
        ws.x = null; // set once the pass is complete, so a failed forward cannot be differentiated
        router.forward(x, ws.logits, ws.scores, ws.topkWeights, ws.topkIds);
        losses.forward(ws.logits, ws.scores, ws.topkIds, ws.localAux, ws.localZ, ws.routedCounts);
        reduceRouterStatistics(ws);

        planDispatch(ws);
        Tensor xs = ws.xsBuffer.slice(0, ws.plan.rows());
        dispatcher.permute(x, ws.plan, xs);
        exchangeCounts(ws);
        expertGroup.allToAllV(xs, ws.sendElements, ws.received, ws.recvElements);
        int rows = ws.received.dim(0);
        if (rows > 0) {
            backend.permute(ws.received, ws.toLocalOrder, 1, ws.xLocal);
            experts.forward(ws.localOffsets, ws.xLocal, ws.h, ws.act, ws.outLocal);
            if (tp > 1) {
                tensorGroup.allReduce(ws.outLocal);
            }
            backend.permute(ws.outLocal, ws.toReceivedOrder, 1, ws.received);
        }
        ws.expertOut = ws.expertOutBuffer.slice(0, ws.plan.rows());
        expertGroup.allToAllV(ws.received, ws.recvElements, ws.expertOut, ws.sendElements);
        combiner.forward(ws.expertOut, ws.topkWeights, ws.plan, ws.y);
        ws.x = x;
        return ws.y;
    }

    /**
     * Backward of ws's last forward: returns gradX [T, hidden] (owned by ws; the full gradient,
     * the same on every rank of the TENSOR group) and accumulates this rank's parameter
     * gradients (sum them with {@link #reduceGradients()}). lossScale is d(total loss) /
     * d(aux loss + z-loss), as for MoELayer. Collective over the EXPERT and TENSOR groups.
     */
    public Tensor backward(Tensor gradY, float lossScale, Workspace ws) {
        checkOwn(ws);
        if (ws.x == null) {
            throw new IllegalStateException("backward: the workspace holds no completed forward pass; call forward first");
        }
        checkActivations("gradY", gradY, ws.tokens);
        require(Float.isFinite(lossScale), "lossScale: must be finite, got " + lossScale);
        requireFinite("gradY", gradY);
        int planRows = ws.plan.rows();
        Tensor gradExpertOut = ws.gradRowsBuffer.slice(0, planRows);
        combiner.backward(gradY, ws.expertOut, ws.topkWeights, ws.plan, gradExpertOut, ws.gradTopkWeights);
        expertGroup.allToAllV(gradExpertOut, ws.sendElements, ws.received, ws.recvElements);
        if (ws.received.dim(0) > 0) {
            backend.permute(ws.received, ws.toLocalOrder, 1, ws.outLocal);
            experts.backward(ws.localOffsets, ws.xLocal, ws.h, ws.act, ws.outLocal, ws.gradAct, ws.gradH, ws.gradXLocal);
            if (tp > 1) {
                tensorGroup.allReduce(ws.gradXLocal);
            }
            backend.permute(ws.gradXLocal, ws.toReceivedOrder, 1, ws.received);
        }
        Tensor gradXs = gradExpertOut; // its rows were sent; reuse the buffer for the returning gradients
        expertGroup.allToAllV(ws.received, ws.recvElements, gradXs, ws.sendElements);
        dispatcher.permuteBackward(gradXs, ws.plan, ws.gradX);

        fillAuxGradient(ws, lossScale);
        router.backwardScores(ws.scores, ws.topkIds, ws.gradTopkWeights, ws.gradScores, ws.gradLogits);
        losses.backwardZ(ws.logits, lossScale * ws.tokens / ws.globalTokens, ws.gradLogits);
        router.backwardGate(ws.x, ws.gradLogits, ws.gradX, true);
        return ws.gradX;
    }

    /**
     * The dispatch plan of ws's routing: through the remap when every expert has one slot, else
     * by the slot of each (token, k) row's copy: copy (dataRank + t) mod copies of its expert.
     */
    private void planDispatch(Workspace ws) {
        if (!hasReplicas(placement)) {
            dispatcher.plan(ws.topkIds, ws.topkWeights, ws.plan);
            return;
        }
        int k = config.topK();
        int[][] copies = new int[config.experts()][];
        Arrays.setAll(copies, placement::slotsOf);
        int[] ids = ws.topkIds.toIntArray();
        int[] slots = new int[ids.length];
        int rank = dataGroup.rank();
        for (int i = 0; i < ids.length; i++) {
            int[] c = copies[ids[i]];
            slots[i] = c[(rank + i / k) % c.length];
        }
        ws.slotIds.copyFrom(slots);
        slotDispatcher.plan(ws.slotIds, ws.topkWeights, ws.plan);
    }

    private static boolean hasReplicas(ExpertPlacement p) {
        return IntStream.range(0, p.experts()).anyMatch(e -> p.copies(e) > 1);
    }

    /**
     * All-reduces over the DATA group what the aux and z losses of the whole batch need: the
     * routed slots per expert, the token count, the per-expert score sums and the local z-loss
     * times the local token count; then computes both losses as pmoe_aux_loss_forward and
     * pmoe_z_loss_forward define them on the concatenated tokens.
     */
    private void reduceRouterStatistics(Workspace ws) {
        int e = config.experts();
        int[] counts = Arrays.copyOf(ws.routedCounts.toIntArray(), e + 1);
        counts[e] = ws.tokens;
        ws.countStats.copyFrom(counts);
        backend.gemm(false, false, 1f, ws.ones.reshape(1, ws.tokens), ws.scores, 0f, ws.scoreSums);
        float[] sums = Arrays.copyOf(ws.scoreSums.toFloatArray(), e + 1);
        sums[e] = ws.localZ.getFloat(0) * ws.tokens;
        ws.scoreStats.copyFrom(sums);
        if (dataGroup.size() > 1) {
            dataGroup.allReduce(ws.countStats);
            dataGroup.allReduce(ws.scoreStats);
        }
        ws.globalCounts = Arrays.copyOf(ws.countStats.toIntArray(), e);
        ws.globalTokens = ws.countStats.getInt(e);
        float[] globalSums = ws.scoreStats.toFloatArray();
        double dot = 0;
        for (int i = 0; i < e; i++) {
            dot += (double) ws.globalCounts[i] * globalSums[i];
        }
        double slots = (double) ws.globalTokens * config.topK();
        ws.auxLoss = (float) (config.auxLossCoeff() * e * dot / (slots * ws.globalTokens));
        ws.zLoss = globalSums[e] / ws.globalTokens;
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

    /**
     * Sends each EP rank the row counts of its slots (all-to-all in the EXPERT group), then
     * derives the element counts of both row exchanges and the regrouping of the received rows
     * (in source-rank, then slot order) into local-slot, then source-rank order.
     */
    private void exchangeCounts(Workspace ws) {
        int s = localSlots();
        int hidden = config.hidden();
        int[] perPeer = new int[ep];
        Arrays.fill(perPeer, s);
        expertGroup.allToAllV(ws.plan.expertCounts(), perPeer, ws.receivedCounts, perPeer);
        int[] sent = ws.plan.counts();
        int[] recv = ws.receivedCounts.toIntArray(); // [source q][local slot l]
        for (int q = 0; q < ep; q++) {
            ws.sendElements[q] = hidden * Arrays.stream(sent, q * s, (q + 1) * s).sum();
            ws.recvElements[q] = hidden * Arrays.stream(recv, q * s, (q + 1) * s).sum();
        }
        int rows = Arrays.stream(recv).sum();
        int[] blockStart = new int[ep * s]; // first received row of block (q, l)
        for (int b = 1; b < ep * s; b++) {
            blockStart[b] = blockStart[b - 1] + recv[b - 1];
        }
        int[] toLocal = new int[rows];
        int[] toReceived = new int[rows];
        int[] offsets = new int[s + 1];
        int next = 0;
        for (int l = 0; l < s; l++) {
            for (int q = 0; q < ep; q++) {
                int b = q * s + l;
                for (int i = 0; i < recv[b]; i++, next++) {
                    toLocal[next] = blockStart[b] + i;
                    toReceived[blockStart[b] + i] = next;
                }
            }
            offsets[l + 1] = next;
        }
        ws.selectReceivedRows(rows);
        ws.localOffsets.copyFrom(offsets);
        if (rows > 0) {
            ws.toLocalOrder.copyFrom(toLocal);
            ws.toReceivedOrder.copyFrom(toReceived);
        }
    }

    /** An f32 [rows, hidden] tensor on the layer's device with at least one row (rows < 0: any). */
    private void checkActivations(String arg, Tensor t, int rows) {
        notNull(arg, t);
        if (t.dtype() != DType.F32 || t.rank() != 2 || t.dim(1) != config.hidden() || t.dim(0) < 1
                || (rows >= 0 && t.dim(0) != rows) || !t.device().equals(backend.device())) {
            throw new IllegalArgumentException(arg + ": expected f32 [" + (rows >= 0 ? rows : "T >= 1") + ", "
                    + config.hidden() + "] on " + backend.device() + ", got " + t.describe());
        }
    }

    private static <T> T notNull(String arg, T value) {
        if (value == null) {
            throw new IllegalArgumentException(arg + ": must not be null");
        }
        return value;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    private void checkOwn(Workspace ws) {
        notNull("ws", ws);
        require(ws.layer() == this, "ws: a workspace of another layer");
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
     * The buffers of one forward/backward pass: token-sized ones, reallocated when the local
     * token count changes, and received-row ones, grown when a pass receives more rows.
     */
    public final class Workspace implements AutoCloseable {
        private TensorScope scope;
        private TensorScope rowScope;
        private int tokens = -1;
        private int rowCapacity = -1;
        private Tensor x;

        private Tensor logits;
        private Tensor scores;
        private Tensor topkWeights;
        private Tensor topkIds;
        private Tensor slotIds;
        private Tensor localAux;
        private Tensor localZ;
        private Tensor routedCounts;
        private Tensor ones;
        private Tensor scoreSums;
        private Tensor countStats;
        private Tensor scoreStats;
        private Tensor auxGradRow;
        private int[] globalCounts;
        private int globalTokens;
        private float auxLoss;
        private float zLoss;

        private DispatchPlan plan;
        private Tensor xsBuffer;
        private Tensor expertOutBuffer;
        private Tensor gradRowsBuffer;
        private Tensor expertOut;
        private Tensor y;
        private Tensor gradTopkWeights;
        private Tensor gradScores;
        private Tensor gradLogits;
        private Tensor gradX;

        private Tensor receivedCounts;
        private Tensor localOffsets;
        private final int[] sendElements = new int[ep];
        private final int[] recvElements = new int[ep];
        // received rows: [R, *] views of the row buffers
        private Tensor receivedBuffer;
        private Tensor xLocalBuffer;
        private Tensor hBuffer;
        private Tensor actBuffer;
        private Tensor outLocalBuffer;
        private Tensor gradActBuffer;
        private Tensor gradHBuffer;
        private Tensor gradXLocalBuffer;
        private Tensor toLocalBuffer;
        private Tensor toReceivedBuffer;
        private Tensor received;
        private Tensor xLocal;
        private Tensor h;
        private Tensor act;
        private Tensor outLocal;
        private Tensor gradAct;
        private Tensor gradH;
        private Tensor gradXLocal;
        private Tensor toLocalOrder;
        private Tensor toReceivedOrder;

        private Workspace() {
        }

        private DistributedMoELayer layer() {
            return DistributedMoELayer.this;
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
            logits = scope.allocate("logits", DType.F32, tokens, e);
            scores = scope.allocate("scores", DType.F32, tokens, e);
            topkWeights = scope.allocate("topkWeights", DType.F32, tokens, k);
            topkIds = scope.allocate("topkIds", DType.I32, tokens, k);
            slotIds = scope.allocate("slotIds", DType.I32, tokens, k);
            localAux = scope.allocate("localAux", DType.F32, 1);
            localZ = scope.allocate("localZ", DType.F32, 1);
            routedCounts = scope.allocate("routedCounts", DType.I32, e);
            ones = scope.allocate("ones", DType.F32, tokens);
            ones.fill(1f);
            scoreSums = scope.allocate("scoreSums", DType.F32, 1, e);
            countStats = scope.allocate("countStats", DType.I32, e + 1);
            scoreStats = scope.allocate("scoreStats", DType.F32, e + 1);
            auxGradRow = scope.allocate("auxGradRow", DType.F32, 1, e);
            plan = new DispatchPlan(scope, tokens, k, placement.physicalSlots());
            xsBuffer = scope.allocate("xs", DType.F32, tokens * k, hidden);
            expertOutBuffer = scope.allocate("expertOut", DType.F32, tokens * k, hidden);
            gradRowsBuffer = scope.allocate("gradRows", DType.F32, tokens * k, hidden);
            y = scope.allocate("y", DType.F32, tokens, hidden);
            gradTopkWeights = scope.allocate("gradTopkWeights", DType.F32, tokens, k);
            gradScores = scope.allocate("gradScores", DType.F32, tokens, e);
            gradLogits = scope.allocate("gradLogits", DType.F32, tokens, e);
            gradX = scope.allocate("gradX", DType.F32, tokens, hidden);
            receivedCounts = scope.allocate("receivedCounts", DType.I32, ep * localSlots());
            localOffsets = scope.allocate("localOffsets", DType.I32, localSlots() + 1);
        }

        private void selectReceivedRows(int rows) {
            if (rows > rowCapacity) {
                if (rowScope != null) {
                    rowScope.close();
                }
                rowScope = TensorScope.shared(backend);
                rowCapacity = Math.max(rows, 1);
                int hidden = config.hidden();
                int hWidth = config.activation().inputWidth(localFfn);
                receivedBuffer = rowScope.allocate("received", DType.F32, rowCapacity, hidden);
                xLocalBuffer = rowScope.allocate("xLocal", DType.F32, rowCapacity, hidden);
                hBuffer = rowScope.allocate("h", DType.F32, rowCapacity, hWidth);
                actBuffer = rowScope.allocate("act", DType.F32, rowCapacity, localFfn);
                outLocalBuffer = rowScope.allocate("outLocal", DType.F32, rowCapacity, hidden);
                gradActBuffer = rowScope.allocate("gradAct", DType.F32, rowCapacity, localFfn);
                gradHBuffer = rowScope.allocate("gradH", DType.F32, rowCapacity, hWidth);
                gradXLocalBuffer = rowScope.allocate("gradXLocal", DType.F32, rowCapacity, hidden);
                toLocalBuffer = rowScope.allocate("toLocalOrder", DType.I32, rowCapacity);
                toReceivedBuffer = rowScope.allocate("toReceivedOrder", DType.I32, rowCapacity);
            }
            received = receivedBuffer.slice(0, rows);
            xLocal = xLocalBuffer.slice(0, rows);
            h = hBuffer.slice(0, rows);
            act = actBuffer.slice(0, rows);
            outLocal = outLocalBuffer.slice(0, rows);
            gradAct = gradActBuffer.slice(0, rows);
            gradH = gradHBuffer.slice(0, rows);
            gradXLocal = gradXLocalBuffer.slice(0, rows);
            toLocalOrder = toLocalBuffer.slice(0, rows);
            toReceivedOrder = toReceivedBuffer.slice(0, rows);
        }

        /** Local token count of the last forward (-1 before the first). */
        public int tokens() {
            return tokens;
        }

        public Tensor output() {
            return afterForward().y;
        }

        /** The aux loss of the whole batch (the DATA group's tokens), scaled by its coefficient. */
        public float auxLoss() {
            return afterForward().auxLoss;
        }

        /** The z-loss of the whole batch, scaled by its coefficient. */
        public float zLoss() {
            return afterForward().zLoss;
        }

        /** Routed (token, k) slots per logical expert from this rank's tokens, before capacity. */
        public int[] routedCounts() {
            return afterForward().routedCounts.toIntArray();
        }

        /** Routed slots per logical expert summed over the DATA group (the whole batch). */
        public int[] globalRoutedCounts() {
            return afterForward().globalCounts.clone();
        }

        /** Token rows this rank's local slots received in the last forward (from all EP ranks). */
        public int receivedRows() {
            return afterForward().received.dim(0);
        }

        public DispatchPlan plan() {
            return afterForward().plan;
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
            x = null;
        }
    }
}
