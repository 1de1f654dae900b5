package dev.panamoe.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class SyntheticCorpusTest {

    private static SyntheticCorpus.Config config(int vocab, int sources, int order, int successors, int seqLen,
                                                 double concentration, double skew, long seed) {
        return new SyntheticCorpus.Config(vocab, sources, order, successors, seqLen, concentration, skew, seed);
    }

    @Test
    void sameSeedGivesSameDataAndDifferentSeedsOrSplitsDiffer() {
        var cfg = SyntheticCorpus.Config.tinyDefaults();
        var a = new SyntheticCorpus(cfg);
        var b = new SyntheticCorpus(cfg);
        for (Split split : Split.values()) {
            Batch x = a.batch(split, 40, 16);
            Batch y = b.batch(split, 40, 16);
            assertArrayEquals(x.tokens(), y.tokens());
            assertArrayEquals(x.sources(), y.sources());
        }
        var other = new SyntheticCorpus(cfg.withSeed(cfg.seed() + 1));
        assertFalse(Arrays.equals(a.batch(Split.TRAIN, 0, 16).tokens(), other.batch(Split.TRAIN, 0, 16).tokens()));
        assertFalse(Arrays.equals(a.row(0, a.startContext()), other.row(0, other.startContext())));
        assertFalse(Arrays.equals(a.batch(Split.TRAIN, 0, 16).tokens(), a.batch(Split.VALIDATION, 0, 16).tokens()));
        assertFalse(Arrays.equals(a.batch(Split.TRAIN, 0, 16).tokens(), a.batch(Split.TRAIN, 16, 16).tokens()));
    }

    @Test
    void batchDependsOnlyOnPositionSoMicroBatchesConcatenate() {
        var corpus = new SyntheticCorpus(config(20, 3, 2, 3, 10, 1.0, 0.0, 7));
        Batch whole = corpus.batch(Split.TRAIN, 1_000_000_000_000L, 8);
        Batch first = corpus.batch(Split.TRAIN, 1_000_000_000_000L, 3);
        Batch second = corpus.batch(Split.TRAIN, first.nextPosition(), 5);
        assertEquals(1_000_000_000_008L, whole.nextPosition());
        int[] joined = Arrays.copyOf(first.tokens(), whole.tokens().length);
        System.arraycopy(second.tokens(), 0, joined, first.tokens().length, second.tokens().length);
        assertArrayEquals(whole.tokens(), joined);
        assertEquals(whole.sources()[4], second.sources()[1]);
    }

    @Test
    void rowsAreSparseDistributions() {
        for (int order = 1; order <= 2; order++) {
            var corpus = new SyntheticCorpus(config(9, 3, order, 4, 8, 0.3, 0.0, order));
            assertEquals((int) Math.pow(10, order), corpus.contexts());
            for (int m = 0; m < 3; m++)
                for (int c = 0; c < corpus.contexts(); c++) {
                    double[] row = corpus.row(m, c);
                    assertEquals(4, Arrays.stream(row).filter(p -> p > 0).count(), "non-zeros of source " + m + " context " + c);
                    assertTrue(Arrays.stream(row).allMatch(p -> p >= 0 && p <= 1));
                    assertEquals(1.0, Arrays.stream(row).sum(), 1e-12);
                }
        }
    }

    @Test
    void chainOfASourceDoesNotDependOnTheNumberOfSources() {
        var two = new SyntheticCorpus(config(12, 2, 1, 3, 8, 1.0, 0.0, 5));
        var five = new SyntheticCorpus(config(12, 5, 1, 3, 8, 1.0, 0.0, 5));
        for (int c = 0; c < two.contexts(); c++) assertArrayEquals(two.row(1, c), five.row(1, c));
        assertFalse(Arrays.equals(five.row(1, 0), five.row(2, 0)));
    }

    /** Every generated transition is allowed by the reported source, and the start tokens follow its start row. */
    @Test
    void sequencesFollowTheirSourcesChains() {
        var corpus = new SyntheticCorpus(config(6, 2, 1, 3, 5, 1.0, 1.0, 11));
        int n = 30_000;
        Batch batch = corpus.batch(Split.TRAIN, 0, n);
        double[][] firstTokenCounts = new double[2][6];
        int[] perSource = new int[2];
        for (int b = 0; b < n; b++) {
            int m = batch.sources()[b];
            perSource[m]++;
            firstTokenCounts[m][batch.token(b, 0)]++;
            int context = corpus.startContext();
            for (int t = 0; t <= 5; t++) {
                assertTrue(corpus.row(m, context)[batch.token(b, t)] > 0, "sequence " + b + " token " + t);
                context = corpus.nextContext(context, batch.token(b, t));
            }
        }
        // skew 1 over 2 sources: weights 2/3 and 1/3
        assertEquals(2.0 / 3, corpus.sourceWeights()[0], 1e-15);
        assertEquals(2.0 / 3, perSource[0] / (double) n, 4 * Math.sqrt(2.0 / 9 / n));
        for (int m = 0; m < 2; m++) {
            double[] start = corpus.row(m, corpus.startContext());
            for (int y = 0; y < 6; y++) {
                double p = start[y];
                assertEquals(p, firstTokenCounts[m][y] / perSource[m], 4.5 * Math.sqrt(p * (1 - p) / perSource[m]) + 1e-12,
                        "start frequency of token " + y + " under source " + m);
            }
        }
    }

    @Test
    void batchTokensAndSourcesAreInRange() {
        var corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults());
        Batch batch = corpus.batch(Split.VALIDATION, 3, 32);
        assertEquals(32 * 65, batch.tokens().length);
        assertTrue(Arrays.stream(batch.tokens()).allMatch(t -> t >= 0 && t < corpus.vocabSize()));
        assertTrue(Arrays.stream(batch.sources()).allMatch(m -> m >= 0 && m < corpus.sourceCount()));
        assertEquals(Split.VALIDATION, batch.split());
    }

    /** V=3, M=2: all 3^(T+1) sequences enumerated, predictive probabilities from prefix probabilities (no filter). */
    @Test
    void floorAndUnigramMatchExactEnumerationOnATinyCase() {
        for (int order = 1; order <= 2; order++) {
            var corpus = new SyntheticCorpus(config(3, 2, order, 2, 4, 1.0, 0.8, 5));
            Exact exact = enumerate(corpus);
            assertEquals(exact.unigram, corpus.unigramLoss(), 1e-12, "unigram, order " + order);

            LossFloor floor = corpus.lossFloor(20_000);
            assertEquals(20_000, floor.sequences());
            assertEquals(exact.floor, floor.nats(), 4 * floor.stderr(), "floor, order " + order);
            assertTrue(floor.stderr() > 0 && floor.stderr() < 0.01, "stderr " + floor.stderr());
            for (int t = 0; t < 4; t++)
                assertEquals(exact.perPosition[t], floor.perPosition()[t], 4 * floor.perPositionStderr()[t] + 1e-12,
                        "position " + t + ", order " + order);
            assertTrue(exact.floor < exact.unigram);
        }
    }

    private record Exact(double floor, double[] perPosition, double unigram) {}

    private static Exact enumerate(SyntheticCorpus corpus) {
        int v = corpus.vocabSize();
        int len = corpus.seqLen();
        double[] weights = corpus.sourceWeights();
        double[] perPosition = new double[len];
        double[] marginal = new double[v];
        int count = (int) Math.pow(v, len + 1);
        double totalProbability = 0;
        for (int code = 0; code < count; code++) {
            int[] x = new int[len + 1];
            for (int t = 0, c = code; t <= len; t++, c /= v) x[t] = c % v;
            // prefix[t] = P(x_0..x_t) = sum over sources of weight * product of transitions
            double[] prefix = new double[len + 1];
            for (int m = 0; m < weights.length; m++) {
                double p = weights[m];
                int context = corpus.startContext();
                for (int t = 0; t <= len; t++) {
                    p *= corpus.row(m, context)[x[t]];
                    context = corpus.nextContext(context, x[t]);
                    prefix[t] += p;
                }
            }
            double p = prefix[len];
            if (p == 0) continue;
            totalProbability += p;
            for (int t = 0; t < len; t++) perPosition[t] += p * -Math.log(prefix[t + 1] / prefix[t]);
            for (int t = 1; t <= len; t++) marginal[x[t]] += p / len;
        }
        assertEquals(1.0, totalProbability, 1e-12);
        double unigram = 0;
        for (double u : marginal) if (u > 0) unigram -= u * Math.log(u);
        return new Exact(Arrays.stream(perPosition).average().orElseThrow(), perPosition, unigram);
    }

    @Test
    void standardErrorShrinksWithTheSquareRootOfSequences() {
        var corpus = new SyntheticCorpus(config(16, 4, 1, 3, 16, 0.5, 0.0, 9));
        LossFloor few = corpus.lossFloor(2_000);
        LossFloor many = corpus.lossFloor(32_000);
        double ratio = few.stderr() / many.stderr();
        assertTrue(ratio > 3 && ratio < 5.5, "stderr ratio " + ratio + " for 16x the sequences");
        assertEquals(few.nats(), many.nats(), 4 * few.stderr());
    }

    /**
     * Near-uniform rows (huge concentration) give every source the same conditional entropy log k,
     * so the floor at a position is log k plus what the next token still says about the source,
     * which falls as the prefix identifies it.
     */
    @Test
    void perPositionFloorFallsAsTheSourceIsIdentified() {
        int k = 3;
        var corpus = new SyntheticCorpus(config(24, 6, 1, k, 12, 1e6, 0.0, 21));
        LossFloor floor = corpus.lossFloor(20_000);
        double[] p = floor.perPosition();
        double[] se = floor.perPositionStderr();
        for (int t = 0; t + 1 < p.length; t++)
            assertTrue(p[t + 1] <= p[t] + 4 * Math.hypot(se[t], se[t + 1]) + 1e-6, "floor rises from position " + t + ": " + Arrays.toString(p));
        assertTrue(p[0] > Math.log(k) + 0.2, "position 0 " + p[0]);
        assertEquals(Math.log(k), p[p.length - 1], 0.01);
        assertTrue(floor.nats() > Math.log(k) - 0.01 && floor.nats() < p[0]);
    }

    @Test
    void tinyDefaultsHaveAFloorWellBelowTheUnigramLoss() {
        var corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults());
        LossFloor floor = corpus.lossFloor(5_000);
        double unigram = corpus.unigramLoss();
        assertTrue(floor.nats() > 0.5, "floor " + floor.nats());
        assertTrue(unigram - floor.nats() > 2.0, "unigram " + unigram + " floor " + floor.nats());
        assertTrue(unigram < Math.log(corpus.vocabSize()));
        assertEquals(1.0, floor.gapClosed(unigram, floor.nats()), 1e-12);
        assertEquals(0.0, floor.gapClosed(unigram, unigram), 1e-12);
        assertEquals(0.9, floor.gapClosed(unigram, floor.nats() + 0.1 * (unigram - floor.nats())), 1e-12);
    }

    @Test
    void badConfigurationsAndRequestsAreRejectedWithTheValue() {
        var e = assertThrows(IllegalArgumentException.class, () -> config(32, 4, 3, 4, 64, 1, 0, 1));
        assertTrue(e.getMessage().contains("order") && e.getMessage().contains("3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config(32, 4, 1, 33, 64, 1, 0, 1));
        assertTrue(e.getMessage().contains("successors") && e.getMessage().contains("33"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config(32, 4, 1, 4, 64, 0.01, 0, 1));
        assertTrue(e.getMessage().contains("concentration") && e.getMessage().contains("0.01"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config(1, 4, 1, 1, 64, 1, 0, 1));
        assertTrue(e.getMessage().contains("vocabSize"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> config(4000, 64, 2, 8, 64, 1, 0, 1));
        assertTrue(e.getMessage().contains("transitions"), e.getMessage());
        var corpus = new SyntheticCorpus(config(8, 2, 1, 2, 4, 1, 0, 1));
        e = assertThrows(IllegalArgumentException.class, () -> corpus.batch(Split.TRAIN, -1, 4));
        assertTrue(e.getMessage().contains("position") && e.getMessage().contains("-1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> corpus.batch(Split.TRAIN, 0, 0));
        assertTrue(e.getMessage().contains("batchSize"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> corpus.lossFloor(1));
        assertTrue(e.getMessage().contains("sequences"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> corpus.nextContext(corpus.startContext(), 8));
        assertTrue(e.getMessage().contains("token") && e.getMessage().contains("8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> corpus.row(0, 9));
        assertTrue(e.getMessage().contains("context") && e.getMessage().contains("9"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> corpus.row(2, 0));
        assertTrue(e.getMessage().contains("source") && e.getMessage().contains("2"), e.getMessage());
    }

    @Test
    void describeNamesTheParameters() {
        String d = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults()).describe();
        assertTrue(d.contains("8 Markov sources") && d.contains("4 of 64 successors") && d.contains("seq 64"), d);
    }
}
