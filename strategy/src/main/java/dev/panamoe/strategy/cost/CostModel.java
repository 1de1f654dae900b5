package dev.panamoe.strategy.cost;

import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Predicts the time of one training step of a model on a cluster under a plan skeleton, an
 * expert placement per MoE layer and an expert-load distribution — data-sensitive, as SmartMoE's
 * model is: the busiest device, not the mean, bounds each MoE layer.
 *
 * <p>The model, per micro-batch of T = microBatch * seq tokens on each data-parallel rank:
 * <ul>
 * <li><b>expert compute</b> of a device = sum over its slots of the roofline time of that
 * expert's rows: max(6 * rows * P / tp / flops, 3 * weightBytes / tp / memoryBandwidth)
 * (forward + two backward GEMMs; P = one expert's parameters); a replicated expert's rows are
 * split evenly among its copies; the busiest device bounds the layer;</li>
 * <li><b>all-to-all</b>: four per MoE layer (dispatch and combine, forward and backward), each
 * moving every row of hidden elements from its source rank to its expert's device; a device's
 * time is its larger of sent and received bytes per topology level over that level's bandwidth
 * (intra- and inter-node links run at once), plus one latency per peer; the slowest device
 * bounds it;</li>
 * <li><b>dense compute</b>: attention (QKV, scores, context, projection), dense FFNs, router
 * and, on the last stage, the LM head, 3 x forward FLOPs, split over tp (of a
 * {@link ModelShape#moeOnly()} model: the routers alone);</li>
 * <li><b>tensor parallel</b>: 4 ring all-reduces of T x hidden per block over the TENSOR
 * group; <b>pipeline</b>: one send of T x hidden forward and one backward per stage boundary,
 * and 1F1B: step = (m - 1) * slowest stage + sum of stages (equal stages: (m + pp - 1) * t,
 * a bubble fraction (pp - 1) / (m + pp - 1));</li>
 * <li><b>gradient reduction</b> after the last micro-batch: a ring all-reduce of the stage's
 * dense gradients over the DATA group (ep * edp ranks) and of the expert gradients over the
 * EXPERT_DATA group (edp ranks);</li>
 * <li><b>memory</b> per device: parameters, gradients (elementBytes each), Adam moments (8
 * bytes) and an f32 master copy when elements are 2 bytes; activations of the micro-batches
 * 1F1B keeps in flight on the first stage (pp of them), with the expert activations of the
 * busiest device's rows.</li>
 * </ul>
 * Ranks are placed as {@link dev.panamoe.strategy.plan.RankLayout} places them; rank r is on
 * node r / gpusPerNode. Expert-parallel groups differ only in their data, so the model prices
 * the groups of stage 0 ("lanes": edp index g, tp index 0); lane g's rank i sends like the
 * load's source (g * ep + i) mod sources. Thread-safe (immutable).
 */
public final class CostModel {
    /** Bytes of optimizer state per parameter: two f32 Adam moments. */
    static final int MOMENT_BYTES = 8;
    /** Lanes priced at most per step estimate (their loads repeat with the load's sources anyway). */
    static final int MAX_LANES = 4;

    private final ModelShape model;
    private final ClusterSpec cluster;

    public CostModel(ModelShape model, ClusterSpec cluster) {
        if (model == null || cluster == null) {
            throw new IllegalArgumentException((model == null ? "model" : "cluster") + ": must not be null");
        }
        this.model = model;
        this.cluster = cluster;
    }

    public ModelShape model() {
        return model;
    }

    public ClusterSpec cluster() {
        return cluster;
    }

    /** Time of one MoE layer's expert compute and its four all-to-alls, for one expert-parallel group. */
    public record MoeLayerCost(double computeSeconds, double allToAllSeconds, double busiestDeviceRows,
            double meanDeviceRows) {
        public double seconds() {
            return computeSeconds + allToAllSeconds;
        }
    }

    /**
     * Seconds of one MoE layer (forward + backward: expert compute of the busiest device plus
     * four all-to-alls) for the expert-parallel group of rank 0, where its rank i sends
     * loadBySourceAndExpert[i][e] token slots to expert e (long[ep][experts]).
     * O(ep x experts + physical slots x devices per node); to price many placements under one
     * load, use {@link #layerPricer}.
     */
    public double moeLayerSeconds(ParallelPlan plan, ExpertPlacement placement, long[][] loadBySourceAndExpert) {
        return moeLayer(plan, 0, placement, loadBySourceAndExpert).seconds();
    }

    /** The terms of {@link #moeLayerSeconds}, for the expert-parallel group of lane (edp index). */
    public MoeLayerCost moeLayer(ParallelPlan plan, int lane, ExpertPlacement placement, long[][] load) {
        return layerPricer(plan, lane, load).cost(placement);
    }

    /**
     * Prices placements of one MoE layer under one load (long[ep][experts] token slots, source by
     * expert) for the expert-parallel group of lane: the load's sums are taken here, once, so each
     * placement then costs O(physical slots x devices per node).
     */
    public LayerPricer layerPricer(ParallelPlan plan, int lane, long[][] load) {
        return new LayerPricer(plan, lane, load);
    }

    /** See {@link #layerPricer}. Immutable. */
    public final class LayerPricer {
        private final ParallelPlan plan;
        private final long[][] load;
        /** group ranks of one node are contiguous: [nodeStart[i], nodeEnd[i]) holds rank i's node */
        private final int[] nodeStart;
        private final int[] nodeEnd;
        private final double[] expertRows;
        private final double[] sent;

        private LayerPricer(ParallelPlan plan, int lane, long[][] load) {
            int ep = plan.ep();
            if (load == null || load.length != ep) {
                throw new IllegalArgumentException("loadBySourceAndExpert: expected " + ep + " sources (ep), got "
                        + (load == null ? "null" : load.length));
            }
            this.plan = plan;
            this.load = load;
            nodeStart = new int[ep];
            nodeEnd = new int[ep];
            for (int i = 0; i < ep; i++) {
                int rank = plan.tp() * (i + ep * lane);
                nodeStart[i] = i > 0 && cluster.sameNode(plan.tp() * (i - 1 + ep * lane), rank) ? nodeStart[i - 1] : i;
            }
            for (int i = ep - 1; i >= 0; i--) {
                nodeEnd[i] = i < ep - 1 && nodeStart[i + 1] == nodeStart[i] ? nodeEnd[i + 1] : i + 1;
            }
            int experts = model.experts();
            expertRows = new double[experts];
            sent = new double[ep];
            for (int s = 0; s < ep; s++) {
                long[] row = load[s];
                if (row == null || row.length != experts) {
                    throw new IllegalArgumentException("loadBySourceAndExpert[" + s + "]: expected " + experts
                            + " experts, got " + (row == null ? "null" : row.length));
                }
                long total = 0;
                for (int e = 0; e < experts; e++) {
                    total += row[e];
                    expertRows[e] += row[e];
                }
                sent[s] = total;
            }
        }

        public double seconds(ExpertPlacement placement) {
            return cost(placement).seconds();
        }

        /**
         * Per slot: its rows come from its own device (no link), its node (intra) or elsewhere
         * (inter); a source's inter-node sends are what it neither keeps nor sends inside its node.
         */
        public MoeLayerCost cost(ExpertPlacement placement) {
            checkPlacement(plan, placement);
            int ep = plan.ep();
            double[] kept = new double[ep];
            double[] sendIntra = new double[ep];
            double[] recvIntra = new double[ep];
            double[] recvInter = new double[ep];
            double[] rows = new double[ep];
            double[] compute = new double[ep];
            for (int p = 0; p < placement.physicalSlots(); p++) {
                int e = placement.expertAt(p);
                if (e == ExpertPlacement.FREE) {
                    continue;
                }
                int d = placement.deviceOf(p);
                double share = 1.0 / placement.copies(e);
                double slotRows = expertRows[e] * share;
                double local = load[d][e] * share;
                double sameNode = 0;
                for (int s = nodeStart[d]; s < nodeEnd[d]; s++) {
                    if (s != d) {
                        double v = load[s][e] * share;
                        sameNode += v;
                        sendIntra[s] += v;
                    }
                }
                kept[d] += local;
                recvIntra[d] += sameNode;
                recvInter[d] += Math.max(0, slotRows - local - sameNode);
                rows[d] += slotRows;
                compute[d] += expertSeconds(plan, slotRows);
            }
            double rowBytes = (double) model.hidden() * cluster.elementBytes();
            double busiestCompute = 0;
            double allToAll = 0;
            double busiestRows = 0;
            double totalRows = 0;
            for (int d = 0; d < ep; d++) {
                busiestCompute = Math.max(busiestCompute, compute[d]);
                busiestRows = Math.max(busiestRows, rows[d]);
                totalRows += rows[d];
                int intraPeers = nodeEnd[d] - nodeStart[d] - 1;
                double sendInter = Math.max(0, sent[d] - kept[d] - sendIntra[d]);
                double t = Math.max(Math.max(sendIntra[d], recvIntra[d]) * rowBytes / cluster.intraBandwidth(),
                        Math.max(sendInter, recvInter[d]) * rowBytes / cluster.interBandwidth())
                        + intraPeers * cluster.intraLatency() + (ep - 1 - intraPeers) * cluster.interLatency();
                allToAll = Math.max(allToAll, t);
            }
            return new MoeLayerCost(busiestCompute, 4 * allToAll, busiestRows, totalRows / ep);
        }
    }

    /** Roofline time of one expert shard over rows token slots, forward + backward. */
    private double expertSeconds(ParallelPlan plan, double rows) {
        if (rows <= 0) {
            return 0;
        }
        double params = (double) model.expertParameters() / plan.tp();
        return Math.max(6 * rows * params / cluster.deviceFlops(),
                3 * params * cluster.elementBytes() / cluster.memoryBandwidth());
    }

    /**
     * Predicted step time of skeleton with placements.get(l) for MoE layer l (null or an empty
     * list: the identity placement everywhere) under load (its layers used modulo their number),
     * with every term and the memory per device.
     */
    public StepEstimate step(Skeleton skeleton, List<ExpertPlacement> placements, ExpertLoad load) {
        return step(skeleton, placements, load, null);
    }

    /**
     * Remembers the MoE layers' terms under the identity placement for each (load, tp, ep,
     * lanes, micro-batch, capacity): pp and the number of micro-batches do not change them, so a
     * search that prices many plans under the same loads computes each once. Holds references to
     * the loads; use one per search. Thread-safe.
     */
    public static final class Memo {
        private final Map<MemoKey, MoeTerms> terms = new ConcurrentHashMap<>();
    }

    private record MemoKey(ExpertLoad load, int tp, int ep, int lanes, long slotsPerRank, long capacity) {
    }

    /** As {@link #step(Skeleton, List, ExpertLoad)}, reusing memo's MoE terms (memo may be null). */
    public StepEstimate step(Skeleton skeleton, List<ExpertPlacement> placements, ExpertLoad load, Memo memo) {
        ParallelPlan plan = skeleton.plan();
        plan.validate(model);
        if (load == null) {
            throw new IllegalArgumentException("load: must not be null");
        }
        if (load.experts() != model.experts()) {
            throw new IllegalArgumentException("load: has " + load.experts() + " experts, the model "
                    + model.experts());
        }
        boolean identity = placements == null || placements.isEmpty();
        if (!identity && placements.size() != model.moeLayers()) {
            throw new IllegalArgumentException("placements: expected one per MoE layer (" + model.moeLayers()
                    + "), got " + placements.size());
        }
        int m = skeleton.microBatches();
        long tokens = (long) skeleton.microBatch() * model.seq();
        long slotsPerRank = tokens * model.topK();
        long capacity = skeleton.dropless() ? Long.MAX_VALUE
                : (long) Math.ceil(slotsPerRank * skeleton.capacityFactor() / model.experts());
        int lanes = Math.min(plan.edp(), lanes(plan, load));
        MoeTerms moe;
        if (identity && memo != null) {
            moe = memo.terms.computeIfAbsent(new MemoKey(load, plan.tp(), plan.ep(), lanes, slotsPerRank, capacity),
                    k -> moeTerms(plan, lanes, slotsPerRank, capacity, null, load));
        } else {
            moe = moeTerms(plan, lanes, slotsPerRank, capacity, identity ? null : placements, load);
        }
        int layersPerStage = model.layers() / plan.pp();
        double rowBytes = (double) tokens * model.hidden() * cluster.elementBytes();
        // per stage: the parts that do not depend on the lane
        double[] dense = new double[plan.pp()];
        double[] tensor = new double[plan.pp()];
        double[] p2p = new double[plan.pp()];
        for (int s = 0; s < plan.pp(); s++) {
            dense[s] = denseSeconds(plan, s, tokens);
            tensor[s] = layersPerStage * 4 * allReduceSeconds(0, 1, plan.tp(), rowBytes);
            p2p[s] = s == plan.pp() - 1 ? 0
                    : 2 * p2pSeconds(s * plan.stageSize(), (s + 1) * plan.stageSize(), rowBytes);
        }
        // the slowest lane's pipeline, and its slowest stage
        double worstPipeline = -1;
        double[] worstExpert = null;
        double[] worstA2a = null;
        for (int g = 0; g < lanes; g++) {
            double[] expert = new double[plan.pp()];
            double[] a2a = new double[plan.pp()];
            for (int l = 0; l < moe.blockOf.length; l++) {
                int s = moe.blockOf[l] / layersPerStage;
                expert[s] += moe.compute[g][l];
                a2a[s] += moe.allToAll[g][l];
            }
            double slowest = 0;
            double sum = 0;
            for (int s = 0; s < plan.pp(); s++) {
                double stage = dense[s] + tensor[s] + p2p[s] + expert[s] + a2a[s];
                slowest = Math.max(slowest, stage);
                sum += stage;
            }
            double pipeline = (m - 1) * slowest + sum;
            if (!Double.isFinite(pipeline)) {
                throw new IllegalArgumentException("cluster: " + cluster.describe()
                        + " makes the predicted step time non-finite (" + pipeline + ")");
            }
            if (pipeline > worstPipeline) {
                worstPipeline = pipeline;
                worstExpert = expert;
                worstA2a = a2a;
            }
        }
        int critical = 0;
        double slowest = -1;
        for (int s = 0; s < plan.pp(); s++) {
            double t = dense[s] + tensor[s] + p2p[s] + worstExpert[s] + worstA2a[s];
            if (t > slowest) {
                slowest = t;
                critical = s;
            }
        }
        int slotsPerDevice = identity ? model.experts() / plan.ep() : slotsPerDevice(plan, placements);
        double denseSync = 0;
        double expertSync = 0;
        for (int s = 0; s < plan.pp(); s++) {
            denseSync = Math.max(denseSync, allReduceSeconds(s * plan.stageSize(), plan.tp(), plan.dataParallel(),
                    denseParametersPerDevice(plan, s) * cluster.elementBytes()));
            expertSync = Math.max(expertSync, allReduceSeconds(s * plan.stageSize(), plan.tp() * plan.ep(),
                    plan.edp(), expertParametersPerDevice(plan, slotsPerDevice) * cluster.elementBytes()));
        }
        double busiestRows = 0;
        double loadRatio = 0;
        long dropped = 0;
        long routed = 0;
        for (int g = 0; g < lanes; g++) {
            busiestRows = Math.max(busiestRows, moe.busiestRows[g]);
            loadRatio += moe.loadRatio[g];
            dropped += moe.dropped[g];
            routed += moe.routed[g];
        }
        double bubble = worstPipeline - m * slowest;
        return new StepEstimate(skeleton, worstPipeline + denseSync + expertSync, m * worstExpert[critical],
                m * worstA2a[critical], m * dense[critical], m * tensor[critical], m * p2p[critical], bubble,
                denseSync, expertSync, routed == 0 ? 0 : (double) dropped / routed, loadRatio / lanes,
                memory(skeleton, slotsPerDevice, busiestRows));
    }

    /** Expert-parallel groups (edp indices) worth pricing: their loads repeat after the load's sources. */
    private static int lanes(ParallelPlan plan, ExpertLoad load) {
        return Math.min(load.distinctGroups(plan.ep()), MAX_LANES);
    }

    /**
     * Per lane and MoE layer, the expert compute and all-to-all of one micro-batch; per lane the
     * busiest device's rows, the mean max/mean load ratio over layers and the dropped slots.
     * blockOf[l] is MoE layer l's transformer block. placements null: the identity placement.
     */
    private record MoeTerms(int[] blockOf, double[][] compute, double[][] allToAll, double[] busiestRows,
            double[] loadRatio, long[] dropped, long[] routed) {
    }

    private MoeTerms moeTerms(ParallelPlan plan, int lanes, long slotsPerRank, long capacity,
            List<ExpertPlacement> placements, ExpertLoad load) {
        int moeLayers = model.moeLayers();
        int[] blockOf = new int[moeLayers];
        for (int layer = 0, l = 0; layer < model.layers(); layer++) {
            if (model.isMoeBlock(layer)) {
                blockOf[l++] = layer;
            }
        }
        ExpertPlacement identity = ExpertPlacement.identity(model.experts(), plan.ep(), 0);
        MoeTerms t = new MoeTerms(blockOf, new double[lanes][moeLayers], new double[lanes][moeLayers],
                new double[lanes], new double[lanes], new long[lanes], new long[lanes]);
        for (int g = 0; g < lanes; g++) {
            for (int l = 0; l < moeLayers; l++) {
                long[][] laneLoad = load.forGroup(l, g, plan.ep(), slotsPerRank);
                for (long[] row : laneLoad) {
                    for (int e = 0; e < row.length; e++) {
                        t.routed[g] += row[e];
                        if (row[e] > capacity) {
                            t.dropped[g] += row[e] - capacity;
                            row[e] = capacity;
                        }
                    }
                }
                MoeLayerCost c = moeLayer(plan, g, placements == null ? identity : placements.get(l), laneLoad);
                t.compute[g][l] = c.computeSeconds();
                t.allToAll[g][l] = c.allToAllSeconds();
                t.busiestRows[g] = Math.max(t.busiestRows[g], c.busiestDeviceRows());
                t.loadRatio[g] += (c.meanDeviceRows() > 0 ? c.busiestDeviceRows() / c.meanDeviceRows() : 1) / moeLayers;
            }
        }
        return t;
    }

    /** Memory per device of the fullest stage, with busiestRows expert rows per MoE layer. */
    public StepEstimate.Memory memory(Skeleton skeleton, int slotsPerDevice, double busiestRows) {
        ParallelPlan plan = skeleton.plan();
        int e = cluster.elementBytes();
        double bestTotal = -1;
        StepEstimate.Memory best = null;
        for (int s = 0; s < plan.pp(); s++) {
            double params = denseParametersPerDevice(plan, s) + expertParametersPerDevice(plan, slotsPerDevice);
            int inFlight = Math.min(plan.pp() - s, skeleton.microBatches());
            double activations = inFlight * activationBytes(skeleton, s, busiestRows);
            double optimizer = params * (MOMENT_BYTES + (e < 4 ? 4 : 0));
            StepEstimate.Memory mem = new StepEstimate.Memory(params * e, params * e, optimizer, activations,
                    cluster.memoryBytes());
            if (mem.total() > bestTotal) {
                bestTotal = mem.total();
                best = mem;
            }
        }
        return best;
    }

    /** Activation bytes one micro-batch leaves on a device of stage s for its backward pass. */
    private double activationBytes(Skeleton skeleton, int stage, double busiestRows) {
        ParallelPlan plan = skeleton.plan();
        double t = (double) skeleton.microBatch() * model.seq();
        double h = model.hidden();
        int tp = plan.tp();
        double half = cluster.elementBytes() / 2.0;
        // Korthikanti et al. (2022), in units of 2-byte elements: attention 6h + 8h/tp + 5 * heads * seq / tp
        // per token, an FFN's replicated part 4h per token
        double attention = half * t * (6 * h + 8 * h / tp + 5.0 * model.heads() * model.seq() / tp);
        double denseFfn = half * t * (4 * h + 4.0 * model.denseFfn() / tp);
        double expertWidth = (model.gatedExperts() ? 3.0 : 2.0) * model.expertFfn() / tp;
        double moe = half * t * 4 * h + t * model.experts() * 4.0
                + cluster.elementBytes() * busiestRows * (2 * h + expertWidth);
        double bytes = 0;
        int layersPerStage = model.layers() / plan.pp();
        for (int layer = stage * layersPerStage; layer < (stage + 1) * layersPerStage; layer++) {
            bytes += (model.moeOnly() ? 0 : attention) + (model.isMoeBlock(layer) ? moe : denseFfn);
        }
        if (stage == plan.pp() - 1 && !model.moeOnly()) {
            bytes += t * model.vocab() / tp * 4.0; // f32 logits for the loss
        }
        return bytes;
    }

    /** Dense parameters a device of stage s holds: its blocks' attention, dense FFNs, norms, routers, embeddings. */
    double denseParametersPerDevice(ParallelPlan plan, int stage) {
        double h = model.hidden();
        int tp = plan.tp();
        int layersPerStage = model.layers() / plan.pp();
        double params = 0;
        for (int layer = stage * layersPerStage; layer < (stage + 1) * layersPerStage; layer++) {
            if (!model.moeOnly()) {
                params += (4 * h * h + 4 * h) / tp + 4 * h; // attention (split) + two LayerNorms
            }
            params += model.isMoeBlock(layer) ? h * model.experts() : (2 * h * model.denseFfn() + model.denseFfn()) / tp
                    + h;
        }
        if (model.moeOnly()) {
            return params;
        }
        double embedding = (double) model.vocab() * h / tp;
        if (stage == 0) {
            params += embedding + (double) model.seq() * h;
        }
        if (stage == plan.pp() - 1 && (!model.tiedEmbeddings() || plan.pp() > 1)) {
            params += embedding; // the LM head (a copy of the tied embedding on another stage)
        }
        return params;
    }

    /** Expert parameters a device of a stage holds: slotsPerDevice expert shards per MoE layer. */
    double expertParametersPerDevice(ParallelPlan plan, int slotsPerDevice) {
        return (double) slotsPerDevice * model.expertParameters() / plan.tp() * (model.moeLayers() / plan.pp());
    }

    private int slotsPerDevice(ParallelPlan plan, List<ExpertPlacement> placements) {
        int slots = 0;
        for (ExpertPlacement p : placements) {
            checkPlacement(plan, p);
            slots = Math.max(slots, p.slotsPerDevice());
        }
        return slots;
    }

    /** Forward + backward dense compute of one micro-batch of tokens on a device of stage s. */
    private double denseSeconds(ParallelPlan plan, int stage, long tokens) {
        double h = model.hidden();
        int layersPerStage = model.layers() / plan.pp();
        double flopsPerToken = 0;
        for (int layer = stage * layersPerStage; layer < (stage + 1) * layersPerStage; layer++) {
            if (!model.moeOnly()) {
                flopsPerToken += 2 * 4 * h * h + 2 * 2 * (double) model.seq() * h; // QKV + projection, scores + context
            }
            flopsPerToken += model.isMoeBlock(layer) ? 2 * h * model.experts() : 2 * 2 * h * model.denseFfn();
        }
        if (stage == plan.pp() - 1 && !model.moeOnly()) {
            flopsPerToken += 2 * h * model.vocab();
        }
        return 3 * flopsPerToken * tokens / plan.tp() / cluster.deviceFlops();
    }

    /**
     * Ring all-reduce of bytes over count ranks first, first + stride, ...: 2 (n - 1) / n of
     * the bytes through the slowest link the ring crosses, and 2 (n - 1) latencies.
     */
    public double allReduceSeconds(int first, int stride, int count, double bytes) {
        if (count <= 1) {
            return 0;
        }
        boolean inter = !cluster.sameNode(first, first + stride * (count - 1));
        double bandwidth = inter ? cluster.interBandwidth() : cluster.intraBandwidth();
        double latency = inter ? cluster.interLatency() : cluster.intraLatency();
        return 2.0 * (count - 1) / count * bytes / bandwidth + 2.0 * (count - 1) * latency;
    }

    private double p2pSeconds(int from, int to, double bytes) {
        return cluster.sameNode(from, to) ? cluster.intraLatency() + bytes / cluster.intraBandwidth()
                : cluster.interLatency() + bytes / cluster.interBandwidth();
    }

    /** Bytes of one expert's parameter shard on one device (elementBytes each). */
    public double expertParameterBytes(ParallelPlan plan) {
        return (double) model.expertParameters() / plan.tp() * cluster.elementBytes();
    }

    /**
     * Bytes that follow one expert shard when it moves: parameters, gradients, two Adam moments
     * and, with 2-byte elements, the f32 master copy.
     */
    public double expertStateBytes(ParallelPlan plan) {
        double params = (double) model.expertParameters() / plan.tp();
        int e = cluster.elementBytes();
        return params * (2 * e + MOMENT_BYTES + (e < 4 ? 4 : 0));
    }

    /**
     * Moving one MoE layer from placement from to placement to, with every moved expert's
     * parameters, gradients and optimizer state ({@link #expertStateBytes}): each slot that
     * receives an expert it did not hold gets it from a device of from that holds it — the
     * same device if possible (no link), else one on the same node, else the first copy.
     */
    public MigrationCost migrationCost(ParallelPlan plan, ExpertPlacement from, ExpertPlacement to) {
        return transferCost(plan, from, to, expertStateBytes(plan));
    }

    /** As {@link #migrationCost} with bytesPerExpert per moved expert (e.g. parameters only, for a replica). */
    public MigrationCost transferCost(ParallelPlan plan, ExpertPlacement from, ExpertPlacement to,
            double bytesPerExpert) {
        checkPlacement(plan, from);
        checkPlacement(plan, to);
        from.changedSlots(to); // checks the shapes match
        int ep = plan.ep();
        double[][] bytes = new double[ep][ep];
        int moved = 0;
        for (int p = 0; p < to.physicalSlots(); p++) {
            int e = to.expertAt(p);
            if (e == ExpertPlacement.FREE || from.expertAt(p) == e) {
                continue;
            }
            int d = to.deviceOf(p);
            int src = sourceDevice(plan, from, e, d);
            if (src != d) {
                bytes[src][d] += bytesPerExpert;
                moved++;
            }
        }
        return linkCost(plan, bytes, moved);
    }

    /**
     * Prices point-to-point transfers inside rank 0's expert-parallel group: bytes[i][j] from
     * group rank i to group rank j, all at once; like one all-to-all.
     */
    public MigrationCost linkCost(ParallelPlan plan, double[][] bytes, int movedExperts) {
        int ep = plan.ep();
        double[] sendIntra = new double[ep];
        double[] recvIntra = new double[ep];
        double[] sendInter = new double[ep];
        double[] recvInter = new double[ep];
        int[] messages = new int[ep];
        double intraTotal = 0;
        double interTotal = 0;
        for (int i = 0; i < ep; i++) {
            for (int j = 0; j < ep; j++) {
                double b = bytes[i][j];
                if (i == j || b == 0) {
                    continue;
                }
                messages[i]++;
                messages[j]++;
                if (cluster.sameNode(plan.tp() * i, plan.tp() * j)) {
                    sendIntra[i] += b;
                    recvIntra[j] += b;
                    intraTotal += b;
                } else {
                    sendInter[i] += b;
                    recvInter[j] += b;
                    interTotal += b;
                }
            }
        }
        double seconds = 0;
        for (int d = 0; d < ep; d++) {
            double t = Math.max(Math.max(sendIntra[d], recvIntra[d]) / cluster.intraBandwidth(),
                    Math.max(sendInter[d], recvInter[d]) / cluster.interBandwidth())
                    + messages[d] * Math.max(cluster.intraLatency(), cluster.interLatency());
            seconds = Math.max(seconds, t);
        }
        return new MigrationCost(movedExperts, intraTotal, interTotal, seconds, bytes);
    }

    private int sourceDevice(ParallelPlan plan, ExpertPlacement from, int expert, int device) {
        int sameNode = -1;
        int first = -1;
        for (int p = 0; p < from.physicalSlots(); p++) {
            if (from.expertAt(p) != expert) {
                continue;
            }
            int d = from.deviceOf(p);
            if (d == device) {
                return d;
            }
            if (first < 0) {
                first = d;
            }
            if (sameNode < 0 && cluster.sameNode(plan.tp() * d, plan.tp() * device)) {
                sameNode = d;
            }
        }
        return sameNode >= 0 ? sameNode : first;
    }

    private void checkPlacement(ParallelPlan plan, ExpertPlacement placement) {
        if (placement == null) {
            throw new IllegalArgumentException("placement: must not be null");
        }
        if (placement.devices() != plan.ep() || placement.experts() != model.experts()) {
            throw new IllegalArgumentException("placement: " + placement.experts() + " experts on "
                    + placement.devices() + " devices, but the plan has ep=" + plan.ep() + " and the model "
                    + model.experts() + " experts");
        }
    }
}
