package dev.panamoe.strategy.policy;

import java.util.Arrays;

/**
 * Per MoE layer, per expert token-slot counts of the last {@code window} iterations — what the
 * trainer records after each step (counts all-reduced over the stage group, so every rank holds
 * the same tracker) and what every {@link PlacementPolicy} decides from.
 *
 * <p>A ring buffer per layer plus a running sum, so recording and reading the window's sum are
 * O(experts). Not thread-safe: one tracker per trainer thread.
 */
public final class LoadTracker {
    private final int experts;
    private final int window;
    private final long[][][] ring;
    private final long[][] sum;
    private final long[] recorded;

    public LoadTracker(int layers, int experts, int window) {
        positive("layers", layers);
        positive("experts", experts);
        positive("window", window);
        this.experts = experts;
        this.window = window;
        this.ring = new long[layers][window][experts];
        this.sum = new long[layers][experts];
        this.recorded = new long[layers];
    }

    public int layers() {
        return ring.length;
    }

    public int experts() {
        return experts;
    }

    public int window() {
        return window;
    }

    /** Records one iteration's per-expert counts of a layer (summed over sources and micro-batches). */
    public void record(int layer, long[] counts) {
        checkLayer(layer);
        if (counts == null || counts.length != experts) {
            throw new IllegalArgumentException("counts: expected " + experts + " experts, got "
                    + (counts == null ? "null" : counts.length));
        }
        for (int e = 0; e < experts; e++) {
            if (counts[e] < 0) {
                throw new IllegalArgumentException("counts: expert " + e + " has negative count " + counts[e]);
            }
        }
        long[] slot = ring[layer][(int) (recorded[layer] % window)];
        long[] s = sum[layer];
        for (int e = 0; e < experts; e++) {
            s[e] += counts[e] - slot[e];
            slot[e] = counts[e];
        }
        recorded[layer]++;
    }

    /** Iterations recorded for layer since the start (not capped by the window). */
    public long recorded(int layer) {
        checkLayer(layer);
        return recorded[layer];
    }

    /** Iterations of layer in the window now: min(recorded, window). */
    public int size(int layer) {
        return (int) Math.min(recorded(layer), window);
    }

    /** The counts recorded age iterations ago (0 = the latest), a copy. */
    public long[] recent(int layer, int age) {
        if (age < 0 || age >= size(layer)) {
            throw new IllegalArgumentException("age: " + age + " is outside [0, " + size(layer) + ") for layer " + layer);
        }
        return ring[layer][(int) ((recorded[layer] - 1 - age) % window)].clone();
    }

    /** Per-expert sum over the window, a copy. */
    public long[] windowSum(int layer) {
        checkLayer(layer);
        return sum[layer].clone();
    }

    /**
     * Per-expert mean count per iteration over the last n iterations (n capped by what the
     * window holds); zeros before anything was recorded.
     */
    public double[] mean(int layer, int n) {
        int k = Math.min(n, size(layer));
        double[] mean = new double[experts];
        if (k == 0) {
            return mean;
        }
        if (k == size(layer)) {
            for (int e = 0; e < experts; e++) {
                mean[e] = (double) sum[layer][e] / k;
            }
            return mean;
        }
        for (int age = 0; age < k; age++) {
            long[] counts = ring[layer][(int) ((recorded[layer] - 1 - age) % window)];
            for (int e = 0; e < experts; e++) {
                mean[e] += counts[e];
            }
        }
        for (int e = 0; e < experts; e++) {
            mean[e] /= k;
        }
        return mean;
    }

    /** Forgets everything recorded (e.g. after a plan switch). */
    public void clear() {
        for (int l = 0; l < ring.length; l++) {
            for (long[] slot : ring[l]) {
                Arrays.fill(slot, 0);
            }
            Arrays.fill(sum[l], 0);
        }
        Arrays.fill(recorded, 0);
    }

    private void checkLayer(int layer) {
        if (layer < 0 || layer >= ring.length) {
            throw new IllegalArgumentException("layer: " + layer + " is outside [0, " + ring.length + ")");
        }
    }

    private static void positive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(name + ": must be >= 1, got " + v);
        }
    }
}
