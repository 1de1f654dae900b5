package dev.panamoe.strategy.cost;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Expert-load distributions: for each MoE layer, each source rank (the rank whose tokens they
 * are) and each expert, how many token slots (tokens x top-k) the router sent there — what a
 * load trace records. The cost model reads it as a shape (who sends how much to which expert)
 * and rescales it to the plan being priced with {@link #forGroup}.
 */
public final class ExpertLoad {
    private final long[][][] counts;

    /** counts[layer][source][expert], non-negative, every layer with the same sources and experts. */
    public ExpertLoad(long[][][] counts) {
        if (counts == null || counts.length == 0) {
            throw new IllegalArgumentException("counts: must hold at least one layer");
        }
        int sources = counts[0].length;
        if (sources == 0 || counts[0][0].length == 0) {
            throw new IllegalArgumentException("counts: layer 0 must hold at least one source and one expert");
        }
        int experts = counts[0][0].length;
        this.counts = new long[counts.length][][];
        for (int l = 0; l < counts.length; l++) {
            if (counts[l].length != sources) {
                throw new IllegalArgumentException("counts[" + l + "]: expected " + sources + " sources, got "
                        + counts[l].length);
            }
            this.counts[l] = new long[sources][];
            for (int s = 0; s < sources; s++) {
                long[] row = counts[l][s];
                if (row.length != experts) {
                    throw new IllegalArgumentException("counts[" + l + "][" + s + "]: expected " + experts
                            + " experts, got " + row.length);
                }
                for (int e = 0; e < experts; e++) {
                    if (row[e] < 0) {
                        throw new IllegalArgumentException("counts[" + l + "][" + s + "][" + e + "]: must be >= 0, got "
                                + row[e]);
                    }
                }
                this.counts[l][s] = row.clone();
            }
        }
    }

    /** Every source sends tokenSlots / experts to every expert (the load-blind assumption). */
    public static ExpertLoad uniform(int layers, int sources, int experts, long tokenSlots) {
        long[][][] c = new long[layers][sources][experts];
        for (long[][] layer : c) {
            for (long[] row : layer) {
                Arrays.fill(row, tokenSlots / experts);
            }
        }
        return new ExpertLoad(c);
    }

    /**
     * Zipf-skewed popularity: expert popularity proportional to 1 / rank^exponent, with a random
     * ranking per layer; each source draws tokenSlots slots from it (multinomial, seeded).
     * exponent 0 is uniform in expectation; SmartMoE's traces look like 0.8–1.2.
     */
    public static ExpertLoad zipf(int layers, int sources, int experts, long tokenSlots, double exponent, long seed) {
        if (!(exponent >= 0)) {
            throw new IllegalArgumentException("exponent: must be >= 0, got " + exponent);
        }
        SplittableRandom rng = new SplittableRandom(seed);
        long[][][] c = new long[layers][sources][experts];
        for (int l = 0; l < layers; l++) {
            int[] order = shuffled(experts, rng);
            double[] cumulative = new double[experts];
            double total = 0;
            for (int r = 0; r < experts; r++) {
                total += Math.pow(r + 1, -exponent);
                cumulative[r] = total;
            }
            for (int s = 0; s < sources; s++) {
                for (long t = 0; t < tokenSlots; t++) {
                    int r = Arrays.binarySearch(cumulative, rng.nextDouble() * total);
                    c[l][s][order[r < 0 ? -r - 1 : r]]++;
                }
            }
        }
        return new ExpertLoad(c);
    }

    /**
     * The same token slots with perfect balance: every source keeps its total per layer and
     * sends an equal share to every expert (a remainder goes one slot each to consecutive
     * experts, starting where the previous source's ended), so every expert, and every device
     * holding as many experts as the others, gets the mean load.
     */
    public ExpertLoad balanced() {
        int experts = experts();
        long[][][] c = new long[counts.length][sources()][experts];
        for (int l = 0; l < counts.length; l++) {
            int next = 0;
            for (int s = 0; s < sources(); s++) {
                long total = Arrays.stream(counts[l][s]).sum();
                Arrays.fill(c[l][s], total / experts);
                for (long r = total % experts; r > 0; r--) {
                    c[l][s][next]++;
                    next = (next + 1) % experts;
                }
            }
        }
        return new ExpertLoad(c);
    }

    public int layers() {
        return counts.length;
    }

    public int sources() {
        return counts[0].length;
    }

    public int experts() {
        return counts[0][0].length;
    }

    /** Token slots source sent to expert in layer. */
    public long count(int layer, int source, int expert) {
        return counts[layer][source][expert];
    }

    /** Token slots per expert of a layer, summed over sources. */
    public long[] expertTotals(int layer) {
        long[] total = new long[experts()];
        for (long[] row : counts[layer]) {
            for (int e = 0; e < row.length; e++) {
                total[e] += row[e];
            }
        }
        return total;
    }

    /**
     * The load one expert-parallel group of {@code groupSize} ranks sees in layer (taken modulo
     * layers()): rank i of group g sends like source (g * groupSize + i) mod sources(), rescaled
     * so that it sends tokenSlotsPerRank slots in all (rounded per expert). Returns
     * long[groupSize][experts].
     */
    public long[][] forGroup(int layer, int group, int groupSize, long tokenSlotsPerRank) {
        long[][] layerCounts = counts[layer % counts.length];
        long[][] out = new long[groupSize][];
        for (int i = 0; i < groupSize; i++) {
            long[] row = layerCounts[(int) (((long) group * groupSize + i) % layerCounts.length)];
            out[i] = rescaled(row, tokenSlotsPerRank);
        }
        return out;
    }

    /** How many different groups of groupSize ranks {@link #forGroup} can produce. */
    public int distinctGroups(int groupSize) {
        int s = sources();
        return s / gcd(s, groupSize);
    }

    private static long[] rescaled(long[] row, long total) {
        long sum = 0;
        for (long v : row) {
            sum += v;
        }
        long[] out = new long[row.length];
        if (sum == 0) {
            Arrays.fill(out, total / row.length);
            return out;
        }
        double scale = (double) total / sum;
        for (int e = 0; e < row.length; e++) {
            out[e] = Math.round(row[e] * scale);
        }
        return out;
    }

    private static int[] shuffled(int n, SplittableRandom rng) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return a;
    }

    private static int gcd(int a, int b) {
        return b == 0 ? a : gcd(b, a % b);
    }
}
