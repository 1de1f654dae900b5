package dev.panamoe.ops;

/**
 * Where each (token, k) slot goes in the expert-sorted buffer, for one token count: per
 * physical expert the kept rows (expertCounts [P]) and where they start (expertOffsets [P + 1]),
 * per slot its row or -1 if dropped (slotPosition [T, K]), per row its slot (sortedSlot [T * K]).
 * Filled by {@link Dispatcher#plan}; the tensors are reused for every batch of that size.
 */
public final class DispatchPlan {
    private final int tokens;
    private final int topK;
    private final boolean dropless;
    private final Tensor expertCounts;
    private final Tensor expertOffsets;
    private final Tensor slotPosition;
    private final Tensor sortedSlot;

    public DispatchPlan(TensorScope scope, int tokens, int topK, int physicalExperts) {
        this(scope, tokens, topK, physicalExperts, false);
    }

    /**
     * A dropless plan keeps every slot, so its {@link #rows()} is tokens * topK, known without
     * reading expertOffsets back from a device (a host synchronisation per call).
     */
    public DispatchPlan(TensorScope scope, int tokens, int topK, int physicalExperts, boolean dropless) {
        this.dropless = dropless;
        this.tokens = Checks.atLeast("tokens", tokens, 0);
        this.topK = Checks.atLeast("topK", topK, 1);
        Checks.atLeast("physicalExperts", physicalExperts, 1);
        this.expertCounts = scope.allocate("expertCounts", DType.I32, physicalExperts);
        this.expertOffsets = scope.allocate("expertOffsets", DType.I32, physicalExperts + 1);
        this.slotPosition = scope.allocate("slotPosition", DType.I32, tokens, topK);
        this.sortedSlot = scope.allocate("sortedSlot", DType.I32, tokens * topK);
    }

    public int tokens() {
        return tokens;
    }

    public int topK() {
        return topK;
    }

    public int physicalExperts() {
        return expertCounts.dim(0);
    }

    /** Rows of the expert-sorted buffer: the slots kept after capacity (read from expertOffsets unless dropless). */
    public int rows() {
        return dropless ? tokens * topK : expertOffsets.getInt(physicalExperts());
    }

    /** Slots dropped by the capacity limit. */
    public int droppedSlots() {
        return tokens * topK - rows();
    }

    /** Rows per physical expert, copied to the heap. */
    public int[] counts() {
        return expertCounts.toIntArray();
    }

    public Tensor expertCounts() {
        return expertCounts;
    }

    public Tensor expertOffsets() {
        return expertOffsets;
    }

    public Tensor slotPosition() {
        return slotPosition;
    }

    public Tensor sortedSlot() {
        return sortedSlot;
    }
}
