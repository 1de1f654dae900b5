package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;

import java.util.Arrays;

/**
 * Sends each (token, k) slot to its physical expert. The router's logical expert ids go through
 * a remap table (logical -> physical slot of the placement; identity by default), then a stable
 * counting sort groups the slots by physical expert, keeping at most
 * capacity = ceil(tokens * k * capacityFactor / logicalExperts) rows per expert (all of them
 * when dropless, capacityFactor = {@link #DROPLESS}); the drop policy picks which.
 * {@link #permute} then gathers the token rows into that order.
 */
public final class Dispatcher {
    /** Capacity factor meaning "no capacity limit". */
    public static final double DROPLESS = Double.POSITIVE_INFINITY;

    private final Backend backend;
    private final int logicalExperts;
    private final int physicalExperts;
    private final int topK;
    private final double capacityFactor;
    private final DropPolicy dropPolicy;
    private final Tensor remap;

    /** Starts with the identity remap (logical expert e -> physical slot e); physicalExperts >= logicalExperts. */
    public Dispatcher(Backend backend, TensorScope scope, int logicalExperts, int physicalExperts, int topK,
            double capacityFactor, DropPolicy dropPolicy) {
        this.backend = Checks.notNull("backend", backend);
        this.logicalExperts = Checks.atLeast("logicalExperts", logicalExperts, 1);
        this.physicalExperts = Checks.atLeast("physicalExperts", physicalExperts, logicalExperts);
        Checks.require(topK >= 1 && topK <= logicalExperts,
                "topK: must be in [1, " + logicalExperts + "] (logical experts), got " + topK);
        this.topK = topK;
        Checks.require(capacityFactor > 0, "capacityFactor: must be > 0 (or DROPLESS), got " + capacityFactor);
        this.capacityFactor = capacityFactor;
        this.dropPolicy = Checks.notNull("dropPolicy", dropPolicy);
        this.remap = scope.allocate("remap", DType.I32, logicalExperts);
        int[] identity = new int[logicalExperts];
        Arrays.setAll(identity, e -> e);
        remap.copyFrom(identity);
    }

    public int logicalExperts() {
        return logicalExperts;
    }

    public int physicalExperts() {
        return physicalExperts;
    }

    public int topK() {
        return topK;
    }

    public double capacityFactor() {
        return capacityFactor;
    }

    public DropPolicy dropPolicy() {
        return dropPolicy;
    }

    /** Sets the placement: logical expert e goes to physical slot remap[e]; slots must be distinct and in [0, P). */
    public void setRemap(int[] remap) {
        Checks.notNull("remap", remap);
        Checks.require(remap.length == logicalExperts,
                "remap: expected " + logicalExperts + " entries (one per logical expert), got " + remap.length);
        int[] owner = new int[physicalExperts];
        Arrays.fill(owner, -1);
        for (int e = 0; e < remap.length; e++) {
            int slot = remap[e];
            Checks.require(slot >= 0 && slot < physicalExperts,
                    "remap[" + e + "]: physical expert " + slot + " is outside [0, " + physicalExperts + ")");
            Checks.require(owner[slot] < 0, "remap[" + e + "]: physical expert " + slot + " is already used by remap[" + owner[slot] + "]");
            owner[slot] = e;
        }
        this.remap.copyFrom(remap);
    }

    public int[] remap() {
        return remap.toIntArray();
    }

    /** Rows kept per physical expert for a batch of tokens, or Backend.CAPACITY_DROPLESS. */
    public int capacity(int tokens) {
        if (capacityFactor == DROPLESS) {
            return Backend.CAPACITY_DROPLESS;
        }
        long slots = (long) tokens * topK;
        // per logical expert, so free physical slots (room for replicas) do not change it
        return (int) Math.min(slots, (long) Math.ceil(slots * capacityFactor / logicalExperts));
    }

    public DispatchPlan newPlan(TensorScope scope, int tokens) {
        return new DispatchPlan(scope, tokens, topK, physicalExperts, capacityFactor == DROPLESS);
    }

    /** Fills plan from the router's topkIds [T, K] and topkWeights [T, K]. */
    public void plan(Tensor topkIds, Tensor topkWeights, DispatchPlan plan) {
        Checks.notNull("plan", plan);
        Checks.tensor("topkIds", topkIds, backend.device(), DType.I32, plan.tokens(), topK);
        Checks.require(plan.physicalExperts() == physicalExperts,
                "plan: expected " + physicalExperts + " physical experts, got " + plan.physicalExperts());
        backend.dispatchPlan(topkIds, topkWeights, remap, logicalExperts, capacity(plan.tokens()), dropPolicy,
                plan.expertCounts(), plan.expertOffsets(), plan.slotPosition(), plan.sortedSlot());
    }

    /** out [plan.rows(), H] = the token rows of x [T, H] in expert order. */
    public void permute(Tensor x, DispatchPlan plan, Tensor out) {
        Checks.notNull("plan", plan);
        Checks.floatTensor("x", x, backend.device(), plan.tokens(), ANY);
        checkRows("out", out, plan);
        backend.permute(x, plan.sortedSlot(), topK, out);
    }

    /** gradX [T, H] = per token, the sum of its kept rows of gradOut [plan.rows(), H] (overwritten). */
    public void permuteBackward(Tensor gradOut, DispatchPlan plan, Tensor gradX) {
        Checks.notNull("plan", plan);
        checkRows("gradOut", gradOut, plan);
        backend.permuteBackward(gradOut, plan.slotPosition(), gradX);
    }

    static void checkRows(String arg, Tensor rows, DispatchPlan plan) {
        Checks.notNull(arg, rows);
        Checks.require(rows.rank() == 2 && rows.dim(0) == plan.rows(), arg + ": expected shape [" + plan.rows()
                + " (rows of the plan), *], got " + Arrays.toString(rows.shape()));
    }
}
