package dev.panamoe.strategy.trace;

import java.util.SplittableRandom;

/**
 * A seeded synthetic expert-load trace with the features that make placement hard: skewed
 * popularity (Zipf), slow drift, and occasional abrupt swaps.
 * <ul>
 *   <li>Each layer ranks its experts in a random order; expert of popularity rank k (1-based) has
 *       the base logit {@code -zipf * ln k}, so the hottest expert of 64 takes ~21% of the tokens at
 *       zipf = 1 — the kind of skew SmartMoE's traces show (busiest device ~3x the mean).</li>
 *   <li>Drift: every iteration each logit takes a Gaussian step of size {@code drift} and is pulled
 *       back toward its base by 1% (a mean-reverting random walk), so the ranking changes slowly.</li>
 *   <li>Swaps: with probability {@code swapProbability} per layer and iteration, one of the hottest
 *       quarter of experts trades its popularity (base and current logit) with a random other expert
 *       — an abrupt change that stale placements pay for.</li>
 *   <li>Source ranks see the layer's popularity times their own fixed log-normal skew (sigma 0.3),
 *       so all-to-all traffic is not uniform; each micro-batch's counts are the expected counts
 *       plus Poisson-sized Gaussian noise, rounded and clipped at zero.</li>
 * </ul>
 * Layers and ranks draw from their own streams split from the seed: the same config gives the same
 * trace, bit for bit.
 */
public final class SyntheticTrace {

    /**
     * @param tokensPerMicroBatch token slots (tokens x top-k) each rank routes per micro-batch
     */
    public record Config(int experts, int ranks, int layers, int iterations, int microBatches,
            int tokensPerMicroBatch, double zipf, double drift, double swapProbability, long seed) {

        public Config {
            positive("experts", experts);
            positive("ranks", ranks);
            positive("layers", layers);
            positive("iterations", iterations);
            positive("microBatches", microBatches);
            positive("tokensPerMicroBatch", tokensPerMicroBatch);
            nonNegative("zipf", zipf);
            nonNegative("drift", drift);
            if (!(swapProbability >= 0 && swapProbability <= 1)) {
                throw new IllegalArgumentException("swapProbability: must be in [0, 1], got " + swapProbability);
            }
        }

        /** SmartMoE-like defaults: 1 micro-batch of 8192 token slots (seq 1024 x 4 sequences x top-2), zipf 1, drift 0.03, swaps 0.005. */
        public static Config of(int experts, int ranks, int layers, int iterations, long seed) {
            return new Config(experts, ranks, layers, iterations, 1, 8192, 1.0, 0.03, 0.005, seed);
        }

        public Config withSkew(double zipf, double drift, double swapProbability) {
            return new Config(experts, ranks, layers, iterations, microBatches, tokensPerMicroBatch, zipf, drift,
                    swapProbability, seed);
        }

        public Config withMicroBatches(int microBatches, int tokensPerMicroBatch) {
            return new Config(experts, ranks, layers, iterations, microBatches, tokensPerMicroBatch, zipf, drift,
                    swapProbability, seed);
        }
    }

    /** How strongly a logit is pulled back to its base each iteration. */
    private static final double REVERSION = 0.01;
    /** Standard deviation of a source rank's log-skew per expert. */
    private static final double SOURCE_SKEW = 0.3;

    private SyntheticTrace() {
    }

    public static LoadTrace generate(Config c) {
        int[] layerIds = new int[c.layers()];
        for (int l = 0; l < layerIds.length; l++) {
            layerIds[l] = l;
        }
        LoadTrace.Builder builder = LoadTrace.builder(layerIds, c.ranks(), c.microBatches(), c.experts());
        SplittableRandom root = new SplittableRandom(c.seed());
        Layer[] layers = new Layer[c.layers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(c, root.split());
        }
        double[] p = new double[c.experts()];
        for (int i = 0; i < c.iterations(); i++) {
            int index = builder.iteration(i);
            for (int l = 0; l < layers.length; l++) {
                Layer layer = layers[l];
                for (int r = 0; r < c.ranks(); r++) {
                    layer.sourceProbabilities(r, p);
                    for (int m = 0; m < c.microBatches(); m++) {
                        builder.put(index, l, r, m, layer.sample(p, c.tokensPerMicroBatch()));
                    }
                }
                layer.step(c);
            }
        }
        return builder.build();
    }

    /** One layer's popularity state and its random stream. */
    private static final class Layer {
        private final SplittableRandom random;
        private final double[] base;
        private final double[] logit;
        private final double[][] sourceSkew;

        Layer(Config c, SplittableRandom random) {
            this.random = random;
            int[] order = permutation(c.experts(), random);
            base = new double[c.experts()];
            for (int k = 0; k < order.length; k++) {
                base[order[k]] = -c.zipf() * Math.log(k + 1);
            }
            logit = base.clone();
            sourceSkew = new double[c.ranks()][c.experts()];
            for (double[] skew : sourceSkew) {
                for (int e = 0; e < skew.length; e++) {
                    skew[e] = SOURCE_SKEW * random.nextGaussian();
                }
            }
        }

        void sourceProbabilities(int rank, double[] p) {
            double max = Double.NEGATIVE_INFINITY;
            for (int e = 0; e < p.length; e++) {
                p[e] = logit[e] + sourceSkew[rank][e];
                max = Math.max(max, p[e]);
            }
            double sum = 0;
            for (int e = 0; e < p.length; e++) {
                p[e] = Math.exp(p[e] - max);
                sum += p[e];
            }
            for (int e = 0; e < p.length; e++) {
                p[e] /= sum;
            }
        }

        int[] sample(double[] p, int tokens) {
            int[] counts = new int[p.length];
            for (int e = 0; e < p.length; e++) {
                double mean = tokens * p[e];
                counts[e] = (int) Math.max(0, Math.round(mean + Math.sqrt(mean) * random.nextGaussian()));
            }
            return counts;
        }

        void step(Config c) {
            for (int e = 0; e < logit.length; e++) {
                logit[e] += c.drift() * random.nextGaussian() - REVERSION * (logit[e] - base[e]);
            }
            if (logit.length > 1 && random.nextDouble() < c.swapProbability()) {
                int hot = hottest(random.nextInt(Math.max(1, logit.length / 4)));
                int other = random.nextInt(logit.length - 1);
                other += other >= hot ? 1 : 0;
                swap(base, hot, other);
                swap(logit, hot, other);
            }
        }

        /** The expert with the (k+1)-th largest base logit. */
        private int hottest(int k) {
            Integer[] order = new Integer[base.length];
            for (int e = 0; e < order.length; e++) {
                order[e] = e;
            }
            java.util.Arrays.sort(order, (a, b) -> Double.compare(base[b], base[a]));
            return order[k];
        }
    }

    private static int[] permutation(int n, SplittableRandom random) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    private static void swap(double[] a, int i, int j) {
        double t = a[i];
        a[i] = a[j];
        a[j] = t;
    }

    private static void positive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(name + ": must be >= 1, got " + v);
        }
    }

    private static void nonNegative(String name, double v) {
        if (!(v >= 0) || Double.isInfinite(v)) {
            throw new IllegalArgumentException(name + ": must be a finite number >= 0, got " + v);
        }
    }
}
