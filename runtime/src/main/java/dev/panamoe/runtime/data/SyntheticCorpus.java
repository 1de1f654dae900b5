package dev.panamoe.runtime.data;

import dev.panamoe.runtime.report.Plural;
import java.util.Arrays;

/**
 * A synthetic corpus with a known loss floor: {@code M} hidden sources, each a sparse random
 * Markov chain of order 1 or 2 over {@code V} symbols; every sequence comes from one source,
 * drawn by the source weights (uniform unless skewed). A model that learns to recognise the
 * source from the prefix, and then that source's transitions, reaches the {@link #lossFloor
 * floor}; experts have something real to specialise in: the source.
 *
 * <p><b>Chains.</b> A context is the last {@code order} tokens, where positions before the start
 * of the sequence hold a virtual begin symbol {@code V}; so there are {@code (V+1)^order} context
 * rows, and the start distribution is simply the row of the all-begin context. Every row of every
 * source allows {@code successors} distinct tokens, chosen uniformly, with probabilities drawn from
 * a symmetric Dirichlet({@code concentration}) — below 1 the rows are peaked, far above 1 nearly
 * uniform. Source {@code m}'s chain depends only on (seed, m), not on the number of sources.
 *
 * <p><b>Streams.</b> Sequence {@code i} of a split is generated from its own generator seeded by
 * (seed, split, i): first its source, then {@code seqLen + 1} tokens. Train, validation and the
 * floor estimate use three disjoint streams.
 */
public final class SyntheticCorpus implements Corpus {

    /**
     * Parameters of a synthetic corpus.
     *
     * @param vocabSize     V, number of symbols
     * @param sources       M, number of hidden sources
     * @param order         Markov order, 1 or 2
     * @param successors    tokens each context row allows, 1..V (the sparsity)
     * @param seqLen        tokens predicted per sequence
     * @param concentration Dirichlet parameter of the row probabilities, in [0.1, 1e6]
     * @param sourceSkew    source weights fall as {@code (m+1)^-sourceSkew}; 0 is uniform
     * @param seed          fixes the chains and every stream
     */
    public record Config(int vocabSize, int sources, int order, int successors, int seqLen,
                         double concentration, double sourceSkew, long seed) {

        /** Upper bound on the stored transitions, {@code M * (V+1)^order * successors}. */
        static final long MAX_TRANSITIONS = 1L << 24;

        public Config {
            if (vocabSize < 2) throw new IllegalArgumentException("vocabSize must be >= 2, got " + vocabSize);
            if (sources < 1) throw new IllegalArgumentException("sources must be >= 1, got " + sources);
            if (order != 1 && order != 2) throw new IllegalArgumentException("order must be 1 or 2, got " + order);
            if (successors < 1 || successors > vocabSize)
                throw new IllegalArgumentException("successors must be in [1, vocabSize=" + vocabSize + "], got " + successors);
            if (seqLen < 1) throw new IllegalArgumentException("seqLen must be >= 1, got " + seqLen);
            if (!(concentration >= 0.1 && concentration <= 1e6))
                throw new IllegalArgumentException("concentration must be in [0.1, 1e6], got " + concentration);
            if (!(sourceSkew >= 0 && sourceSkew <= 100))
                throw new IllegalArgumentException("sourceSkew must be in [0, 100], got " + sourceSkew);
            long transitions = sources * (long) Math.pow(vocabSize + 1, order) * successors;
            if (transitions > MAX_TRANSITIONS)
                throw new IllegalArgumentException("sources * (vocabSize+1)^order * successors = " + transitions
                        + " transitions exceeds the limit " + MAX_TRANSITIONS);
        }

        /**
         * The corpus of the {@code tiny} demo: 64 symbols, 8 equally likely first-order sources
         * (one per expert of the tiny model), 4 successors per symbol with peaked (Dirichlet 0.5)
         * probabilities, 64 predicted tokens. Unigram loss 4.095 nats, floor 0.844 (a source-blind
         * bigram model reaches 2.37, 53% of the gap). Each source starts on its own few symbols and
         * visits its own, so the first token or the bag of tokens seen so far already names the
         * source well enough to close over 90% of the gap; what the model must learn is 8 small
         * transition tables, which a small MoE does in a couple of minutes on the CPU.
         */
        public static Config tinyDefaults() {
            return new Config(64, 8, 1, 4, 64, 0.5, 0.0, 1234);
        }

        public Config withSeqLen(int newSeqLen) {
            return new Config(vocabSize, sources, order, successors, newSeqLen, concentration, sourceSkew, seed);
        }

        public Config withSeed(long newSeed) {
            return new Config(vocabSize, sources, order, successors, seqLen, concentration, sourceSkew, newSeed);
        }
    }

    /** Sequences for a floor estimate whose standard error is far below any loss difference of interest. */
    public static final int DEFAULT_FLOOR_SEQUENCES = 20_000;

    private static final long CHAIN_STREAM = 0;
    private static final long TRAIN_STREAM = 1;
    private static final long VALIDATION_STREAM = 2;
    private static final long FLOOR_STREAM = 3;

    private final Config config;
    private final int contexts;
    private final double[] sourceWeights;
    /** Per source, {@code successors} token ids (ascending) and probabilities for each context row. */
    private final int[][] next;
    private final double[][] prob;

    public SyntheticCorpus(Config config) {
        this.config = config;
        this.contexts = (int) Math.pow(config.vocabSize() + 1, config.order());
        this.sourceWeights = zipfWeights(config.sources(), config.sourceSkew());
        this.next = new int[config.sources()][];
        this.prob = new double[config.sources()][];
        for (int m = 0; m < config.sources(); m++) buildChain(m);
    }

    private static double[] zipfWeights(int count, double skew) {
        double[] w = new double[count];
        for (int m = 0; m < count; m++) w[m] = Math.pow(m + 1, -skew);
        double total = Arrays.stream(w).sum();
        for (int m = 0; m < count; m++) w[m] /= total;
        return w;
    }

    private void buildChain(int source) {
        int k = config.successors();
        Rng rng = new Rng(Rng.seedFor(config.seed(), CHAIN_STREAM, source));
        next[source] = new int[contexts * k];
        prob[source] = new double[contexts * k];
        boolean[] chosen = new boolean[config.vocabSize()];
        for (int c = 0; c < contexts; c++) {
            int[] row = distinctTokens(rng, chosen, k);
            double[] p = dirichlet(rng, k, config.concentration());
            System.arraycopy(row, 0, next[source], c * k, k);
            System.arraycopy(p, 0, prob[source], c * k, k);
        }
    }

    /** {@code k} distinct tokens uniformly at random, ascending (Floyd's algorithm). */
    private int[] distinctTokens(Rng rng, boolean[] chosen, int k) {
        int v = config.vocabSize();
        for (int j = v - k; j < v; j++) {
            int t = rng.nextInt(j + 1);
            chosen[chosen[t] ? j : t] = true;
        }
        int[] row = new int[k];
        for (int t = 0, n = 0; t < v; t++) {
            if (chosen[t]) row[n++] = t;
            chosen[t] = false;
        }
        return row;
    }

    private static double[] dirichlet(Rng rng, int k, double concentration) {
        double[] p = new double[k];
        double total = 0;
        for (int j = 0; j < k; j++) total += p[j] = rng.nextGamma(concentration);
        for (int j = 0; j < k; j++) p[j] /= total;
        return p;
    }

    public Config config() {
        return config;
    }

    @Override
    public int vocabSize() {
        return config.vocabSize();
    }

    @Override
    public int seqLen() {
        return config.seqLen();
    }

    @Override
    public int sourceCount() {
        return config.sources();
    }

    @Override
    public String describe() {
        return String.format("synthetic: %s%s (order %d, %d of %d successors, Dirichlet %s), seq %d, seed %d",
                Plural.of(config.sources(), "Markov source"), config.sourceSkew() == 0 ? "" : " (skew " + config.sourceSkew() + ")", config.order(),
                config.successors(), config.vocabSize(), config.concentration(), config.seqLen(), config.seed());
    }

    @Override
    public Batch batch(Split split, long position, int batchSize) {
        int len = config.seqLen() + 1;
        Batch.checkRequest(position, batchSize, config.seqLen());
        long stream = split == Split.TRAIN ? TRAIN_STREAM : VALIDATION_STREAM;
        int[] tokens = new int[batchSize * len];
        int[] sources = new int[batchSize];
        int[] sequence = new int[len];
        for (int b = 0; b < batchSize; b++) {
            sources[b] = sample(stream, position + b, sequence);
            System.arraycopy(sequence, 0, tokens, b * len, len);
        }
        return new Batch(split, position, batchSize, config.seqLen(), tokens, sources);
    }

    /** Generates sequence {@code index} of {@code stream} into {@code out}; returns its source. */
    private int sample(long stream, long index, int[] out) {
        Rng rng = new Rng(Rng.seedFor(config.seed(), stream, index));
        int source = drawIndex(rng, sourceWeights, 0, sourceWeights.length);
        int k = config.successors();
        int context = startContext();
        for (int t = 0; t < out.length; t++) {
            int token = next[source][context * k + drawIndex(rng, prob[source], context * k, k)];
            out[t] = token;
            context = shift(context, token);
        }
        return source;
    }

    /** An index in {@code [0, n)} drawn with the probabilities {@code p[from .. from+n)}. */
    private static int drawIndex(Rng rng, double[] p, int from, int n) {
        double u = rng.nextDouble();
        for (int j = 0; j < n - 1; j++) {
            u -= p[from + j];
            if (u < 0) return j;
        }
        return n - 1;
    }

    // ---- the chains, for the floor and for tests and reports ----

    /** Number of context rows, {@code (V+1)^order}. */
    public int contexts() {
        return contexts;
    }

    /** The context before the first token (all begin symbols); its row is the start distribution. */
    public int startContext() {
        return contexts - 1;
    }

    /** The context after {@code token} follows {@code context}: drop the oldest token, append this one. */
    public int nextContext(int context, int token) {
        checkContext(context);
        if (token < 0 || token >= config.vocabSize())
            throw new IllegalArgumentException("token must be in [0, " + config.vocabSize() + "), got " + token);
        return shift(context, token);
    }

    private int shift(int context, int token) {
        return (int) (((long) context * (config.vocabSize() + 1) + token) % contexts);
    }

    private void checkContext(int context) {
        if (context < 0 || context >= contexts)
            throw new IllegalArgumentException("context must be in [0, " + contexts + "), got " + context);
    }

    /** Probability of each source; a copy. */
    public double[] sourceWeights() {
        return sourceWeights.clone();
    }

    /** The next-token distribution of {@code source} in {@code context}, dense over the vocabulary. */
    public double[] row(int source, int context) {
        if (source < 0 || source >= config.sources())
            throw new IllegalArgumentException("source must be in [0, " + config.sources() + "), got " + source);
        checkContext(context);
        double[] dense = new double[config.vocabSize()];
        int k = config.successors();
        for (int j = 0; j < k; j++) dense[next[source][context * k + j]] = prob[source][context * k + j];
        return dense;
    }

    private double probability(int source, int context, int token) {
        int k = config.successors();
        for (int j = context * k; j < (context + 1) * k; j++)
            if (next[source][j] == token) return prob[source][j];
        return 0;
    }

    // ---- baselines ----

    /**
     * The loss floor, estimated over {@code sequences} sequences of a stream of their own.
     *
     * <p>Each sequence is filtered exactly: the posterior over sources starts at the source
     * weights and is multiplied by each observed token's likelihood under each source; the
     * prediction for the next token is the posterior-weighted mixture of the sources' rows. The
     * loss at a position is taken as the entropy of that prediction, which is the expected
     * {@code -log q(next)} given the prefix (the prediction is the true conditional distribution),
     * so only the prefix is Monte-Carlo sampled and the variance is lower than with sampled tokens.
     */
    public LossFloor lossFloor(int sequences) {
        if (sequences < 2) throw new IllegalArgumentException("sequences must be >= 2, got " + sequences);
        int len = config.seqLen();
        double[] sum = new double[len];
        double[] sumSq = new double[len];
        double total = 0, totalSq = 0;
        int[] sequence = new int[len + 1];
        double[] entropy = new double[len];
        double[] posterior = new double[config.sources()];
        double[] mixture = new double[config.vocabSize()];
        for (int n = 0; n < sequences; n++) {
            sample(FLOOR_STREAM, n, sequence);
            predictiveEntropies(sequence, posterior, mixture, entropy);
            double mean = 0;
            for (int t = 0; t < len; t++) {
                sum[t] += entropy[t];
                sumSq[t] += entropy[t] * entropy[t];
                mean += entropy[t];
            }
            mean /= len;
            total += mean;
            totalSq += mean * mean;
        }
        double[] perPosition = new double[len];
        double[] perPositionStderr = new double[len];
        for (int t = 0; t < len; t++) {
            perPosition[t] = sum[t] / sequences;
            perPositionStderr[t] = standardError(sum[t], sumSq[t], sequences);
        }
        return new LossFloor(total / sequences, standardError(total, totalSq, sequences), sequences, perPosition,
                perPositionStderr);
    }

    private static double standardError(double sum, double sumSq, int n) {
        double mean = sum / n;
        double variance = Math.max(0, (sumSq - n * mean * mean) / (n - 1));
        return Math.sqrt(variance / n);
    }

    /**
     * Bayesian filtering over the sources along {@code sequence}: {@code entropy[t]} is the entropy
     * of the predictive distribution of token {@code t+1} given tokens {@code 0..t}.
     */
    private void predictiveEntropies(int[] sequence, double[] posterior, double[] mixture, double[] entropy) {
        int k = config.successors();
        System.arraycopy(sourceWeights, 0, posterior, 0, posterior.length);
        int context = shift(startContext(), sequence[0]);
        observe(posterior, startContext(), sequence[0]);
        for (int t = 0; t < entropy.length; t++) {
            Arrays.fill(mixture, 0);
            for (int m = 0; m < posterior.length; m++) {
                if (posterior[m] == 0) continue; // ruled out: most sources, once the prefix names one
                for (int j = context * k; j < (context + 1) * k; j++) mixture[next[m][j]] += posterior[m] * prob[m][j];
            }
            entropy[t] = entropyOf(mixture);
            observe(posterior, context, sequence[t + 1]);
            context = shift(context, sequence[t + 1]);
        }
    }

    /** Bayes' rule: multiply the posterior by each source's likelihood of {@code token}, renormalise. */
    private void observe(double[] posterior, int context, int token) {
        double total = 0;
        for (int m = 0; m < posterior.length; m++) total += posterior[m] *= probability(m, context, token);
        for (int m = 0; m < posterior.length; m++) posterior[m] /= total;
    }

    private static double entropyOf(double[] p) {
        double h = 0;
        for (double x : p) if (x > 0) h -= x * Math.log(x);
        return h;
    }

    /**
     * The loss of the best unigram model — one fixed distribution for every position — computed
     * exactly, not sampled: the entropy of the marginal distribution of the predicted tokens
     * {@code 1..seqLen}, averaged over positions, which propagates each source's context
     * distribution forward from the start context.
     */
    public double unigramLoss() {
        int k = config.successors();
        int len = config.seqLen();
        double[] marginal = new double[config.vocabSize()];
        for (int m = 0; m < config.sources(); m++) {
            double[] mass = new double[contexts];
            mass[startContext()] = sourceWeights[m];
            for (int t = 0; t <= len; t++) {
                double[] after = new double[contexts];
                for (int c = 0; c < contexts; c++) {
                    if (mass[c] == 0) continue;
                    for (int j = c * k; j < (c + 1) * k; j++) {
                        double p = mass[c] * prob[m][j];
                        after[shift(c, next[m][j])] += p;
                        if (t > 0) marginal[next[m][j]] += p / len;
                    }
                }
                mass = after;
            }
        }
        return entropyOf(marginal);
    }
}
