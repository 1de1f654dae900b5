package dev.panamoe.strategy.trace;

import java.util.Arrays;

/**
 * Expert load recorded while training: for each iteration, MoE layer, source rank and
 * micro-batch, the number of token slots (tokens x top-k) the router sent to each expert.
 * Iterations and layers keep the numbers they were recorded under (a trace may sample every
 * tenth iteration, or number MoE layers by their transformer block); everything else indexes
 * them 0..n-1.
 *
 * <p>Immutable. Storage is one int array per iteration laid out [layer][rank][microBatch][expert].
 */
public final class LoadTrace {
    private final int[] iterationIds;
    private final int[] layerIds;
    private final int ranks;
    private final int microBatches;
    private final int experts;
    private final int[][] counts;

    private LoadTrace(int[] iterationIds, int[] layerIds, int ranks, int microBatches, int experts, int[][] counts) {
        this.iterationIds = iterationIds;
        this.layerIds = layerIds;
        this.ranks = ranks;
        this.microBatches = microBatches;
        this.experts = experts;
        this.counts = counts;
    }

    public static Builder builder(int[] layerIds, int ranks, int microBatches, int experts) {
        return new Builder(layerIds, ranks, microBatches, experts);
    }

    public int iterations() {
        return iterationIds.length;
    }

    public int layers() {
        return layerIds.length;
    }

    public int ranks() {
        return ranks;
    }

    public int microBatches() {
        return microBatches;
    }

    public int experts() {
        return experts;
    }

    /** The iteration number iteration index i was recorded under. */
    public int iterationId(int i) {
        return iterationIds[i];
    }

    /** The MoE layer number layer index l was recorded under. */
    public int layerId(int l) {
        return layerIds[l];
    }

    public int[] iterationIds() {
        return iterationIds.clone();
    }

    public int[] layerIds() {
        return layerIds.clone();
    }

    /** The per-expert counts of one micro-batch on one source rank (a copy). */
    public int[] microBatch(int iteration, int layer, int rank, int microBatch) {
        int at = offset(layer, rank, microBatch);
        return Arrays.copyOfRange(counts[iteration], at, at + experts);
    }

    /** Per-expert counts of one layer at one iteration, summed over ranks and micro-batches. */
    public long[] layerLoad(int iteration, int layer) {
        long[] load = new long[experts];
        int[] data = counts[iteration];
        int from = offset(layer, 0, 0);
        for (int i = 0; i < ranks * microBatches; i++) {
            for (int e = 0; e < experts; e++) {
                load[e] += data[from + i * experts + e];
            }
        }
        return load;
    }

    /** [rank][expert] counts of one layer at one iteration, summed over micro-batches. */
    public long[][] sourceLoad(int iteration, int layer) {
        long[][] load = new long[ranks][experts];
        int[] data = counts[iteration];
        for (int r = 0; r < ranks; r++) {
            for (int m = 0; m < microBatches; m++) {
                int at = offset(layer, r, m);
                for (int e = 0; e < experts; e++) {
                    load[r][e] += data[at + e];
                }
            }
        }
        return load;
    }

    /** The same trace with each rank's micro-batches summed into one. */
    public LoadTrace withMicroBatchesSummed() {
        if (microBatches == 1) {
            return this;
        }
        Builder b = builder(layerIds, ranks, 1, experts);
        for (int i = 0; i < iterations(); i++) {
            int index = b.iteration(iterationIds[i]);
            for (int l = 0; l < layers(); l++) {
                long[][] source = sourceLoad(i, l);
                for (int r = 0; r < ranks; r++) {
                    int[] summed = new int[experts];
                    for (int e = 0; e < experts; e++) {
                        summed[e] = Math.toIntExact(source[r][e]);
                    }
                    b.put(index, l, r, 0, summed);
                }
            }
        }
        return b.build();
    }

    /**
     * The trace of the one MoE layer whose id (the L of "L:[[...]]") is layerId, every other
     * layer dropped; an id the trace lacks is an error listing the ids it has.
     */
    public LoadTrace onlyLayer(int layerId) {
        int l = indexOfLayer(layerId);
        if (l < 0) {
            throw new IllegalArgumentException("layer: the trace has no MoE layer " + layerId + "; its layers are "
                    + Arrays.toString(layerIds));
        }
        Builder b = builder(new int[] {layerId}, ranks, microBatches, experts);
        for (int i = 0; i < iterations(); i++) {
            int index = b.iteration(iterationIds[i]);
            for (int r = 0; r < ranks; r++) {
                for (int m = 0; m < microBatches; m++) {
                    b.put(index, 0, r, m, microBatch(i, l, r, m));
                }
            }
        }
        return b.build();
    }

    private int indexOfLayer(int layerId) {
        for (int l = 0; l < layerIds.length; l++) {
            if (layerIds[l] == layerId) {
                return l;
            }
        }
        return -1;
    }

    private int offset(int layer, int rank, int microBatch) {
        return ((layer * ranks + rank) * microBatches + microBatch) * experts;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LoadTrace t && Arrays.equals(t.iterationIds, iterationIds)
                && Arrays.equals(t.layerIds, layerIds) && t.ranks == ranks && t.microBatches == microBatches
                && t.experts == experts && Arrays.deepEquals(t.counts, counts);
    }

    @Override
    public int hashCode() {
        return Arrays.deepHashCode(counts) * 31 + Arrays.hashCode(layerIds);
    }

    @Override
    public String toString() {
        return "LoadTrace[" + iterations() + " iterations, " + layers() + " layers, " + ranks + " ranks, "
                + microBatches + " micro-batches, " + experts + " experts]";
    }

    /**
     * Collects a trace iteration by iteration; every (layer, rank, micro-batch) of every
     * iteration must be put exactly once before build().
     */
    public static final class Builder {
        private final int[] layerIds;
        private final int ranks;
        private final int microBatches;
        private final int experts;
        private int[] iterationIds = new int[16];
        private int[][] counts = new int[16][];
        private boolean[][] filled = new boolean[16][];
        private int iterations;

        private Builder(int[] layerIds, int ranks, int microBatches, int experts) {
            if (layerIds == null || layerIds.length == 0) {
                throw new IllegalArgumentException("layerIds: need at least one MoE layer");
            }
            positive("ranks", ranks);
            positive("microBatches", microBatches);
            positive("experts", experts);
            this.layerIds = layerIds.clone();
            int[] ids = layerIds.clone();
            Arrays.sort(ids);
            for (int i = 1; i < ids.length; i++) {
                if (ids[i] == ids[i - 1]) {
                    throw new IllegalArgumentException("layerIds: layer " + ids[i] + " appears twice");
                }
            }
            this.ranks = ranks;
            this.microBatches = microBatches;
            this.experts = experts;
        }

        /** Starts iteration number id (ids must ascend) and returns its index. */
        public int iteration(int id) {
            if (iterations > 0 && id <= iterationIds[iterations - 1]) {
                throw new IllegalArgumentException("iteration: ids must ascend, got " + id + " after "
                        + iterationIds[iterations - 1]);
            }
            if (iterations == iterationIds.length) {
                iterationIds = Arrays.copyOf(iterationIds, iterations * 2);
                counts = Arrays.copyOf(counts, iterations * 2);
                filled = Arrays.copyOf(filled, iterations * 2);
            }
            iterationIds[iterations] = id;
            counts[iterations] = new int[layerIds.length * ranks * microBatches * experts];
            filled[iterations] = new boolean[layerIds.length * ranks * microBatches];
            return iterations++;
        }

        public int ranks() {
            return ranks;
        }

        public int microBatches() {
            return microBatches;
        }

        public int experts() {
            return experts;
        }

        /** The index of layer number id, or -1. */
        public int layerIndex(int id) {
            for (int l = 0; l < layerIds.length; l++) {
                if (layerIds[l] == id) {
                    return l;
                }
            }
            return -1;
        }

        public void put(int iteration, int layer, int rank, int microBatch, int[] expertCounts) {
            check("iteration", iteration, iterations);
            check("layer", layer, layerIds.length);
            check("rank", rank, ranks);
            check("microBatch", microBatch, microBatches);
            if (expertCounts.length != experts) {
                throw new IllegalArgumentException("counts: expected " + experts + " experts, got "
                        + expertCounts.length);
            }
            int cell = (layer * ranks + rank) * microBatches + microBatch;
            if (filled[iteration][cell]) {
                throw new IllegalArgumentException("counts: iteration " + iterationIds[iteration] + " layer "
                        + layerIds[layer] + " rank " + rank + " micro-batch " + microBatch + " given twice");
            }
            for (int e = 0; e < experts; e++) {
                if (expertCounts[e] < 0) {
                    throw new IllegalArgumentException("counts: expert " + e + " has negative count "
                            + expertCounts[e]);
                }
            }
            System.arraycopy(expertCounts, 0, counts[iteration], cell * experts, experts);
            filled[iteration][cell] = true;
        }

        public LoadTrace build() {
            if (iterations == 0) {
                throw new IllegalArgumentException("trace: no iterations");
            }
            for (int i = 0; i < iterations; i++) {
                for (int cell = 0; cell < filled[i].length; cell++) {
                    if (!filled[i][cell]) {
                        int m = cell % microBatches;
                        int r = cell / microBatches % ranks;
                        int l = cell / microBatches / ranks;
                        throw new IllegalArgumentException("trace: iteration " + iterationIds[i] + " has no counts for layer "
                                + layerIds[l] + " rank " + r + " micro-batch " + m);
                    }
                }
            }
            return new LoadTrace(Arrays.copyOf(iterationIds, iterations), layerIds.clone(), ranks, microBatches,
                    experts, Arrays.copyOf(counts, iterations));
        }

        private static void check(String name, int v, int bound) {
            if (v < 0 || v >= bound) {
                throw new IllegalArgumentException(name + ": " + v + " is outside [0, " + bound + ")");
            }
        }
    }

    private static void positive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(name + ": must be >= 1, got " + v);
        }
    }
}
