package dev.panamoe.runtime.report;

/**
 * How strongly the experts of one MoE layer specialise in the hidden sources of a synthetic corpus,
 * from {@code counts[expert][source]}: the number of token-to-expert assignments of tokens from
 * sequences of that source.
 *
 * <p>The score is the <em>purity</em> of the routing, read as a clustering of tokens into experts:
 * <pre>
 *   purity = sum_e max_s counts[e][s] / sum_e sum_s counts[e][s]
 *          = sum_e P(e) * max_s P(s | e)
 * </pre>
 * the mean over experts, weighted by their load, of the share of their dominant source. It is 1 when
 * every expert receives tokens of a single source, and {@link #chancePurity} (the share of the most
 * frequent source, 1/M for M equally frequent sources) when routing ignores the source. Experts that
 * receive no tokens weigh nothing.
 */
public final class Specialisation {

    private Specialisation() {
    }

    /** {@code P(source | expert)} for each expert: each row of {@code counts} over its sum (zeros if empty). */
    public static double[][] sourceGivenExpert(long[][] counts) {
        int sources = checkShape(counts);
        double[][] p = new double[counts.length][sources];
        for (int e = 0; e < counts.length; e++) {
            long total = 0;
            for (long c : counts[e])
                total += c;
            for (int s = 0; s < sources && total > 0; s++)
                p[e][s] = (double) counts[e][s] / total;
        }
        return p;
    }

    /** The purity score defined above; {@code NaN} when no token was counted. */
    public static double purity(long[][] counts) {
        checkShape(counts);
        long dominant = 0;
        long total = 0;
        for (long[] expert : counts) {
            long max = 0;
            for (long c : expert) {
                max = Math.max(max, c);
                total += c;
            }
            dominant += max;
        }
        return total == 0 ? Double.NaN : (double) dominant / total;
    }

    /** The purity of routing that ignores the source: the largest source's share of all tokens. */
    public static double chancePurity(long[][] counts) {
        int sources = checkShape(counts);
        long[] perSource = new long[sources];
        long total = 0;
        for (long[] expert : counts)
            for (int s = 0; s < sources; s++) {
                perSource[s] += expert[s];
                total += expert[s];
            }
        long max = 0;
        for (long c : perSource)
            max = Math.max(max, c);
        return total == 0 ? Double.NaN : (double) max / total;
    }

    /** Checks that {@code counts} is a non-empty rectangle of non-negative counts; returns the source count. */
    private static int checkShape(long[][] counts) {
        if (counts == null || counts.length == 0 || counts[0] == null || counts[0].length == 0)
            throw new IllegalArgumentException("counts must be a non-empty [expert][source] matrix");
        int sources = counts[0].length;
        for (int e = 0; e < counts.length; e++) {
            if (counts[e] == null || counts[e].length != sources)
                throw new IllegalArgumentException("counts[" + e + "] must have " + sources + " sources, got "
                        + (counts[e] == null ? "null" : counts[e].length));
            for (int s = 0; s < sources; s++)
                if (counts[e][s] < 0)
                    throw new IllegalArgumentException("counts[" + e + "][" + s + "] must be >= 0, got " + counts[e][s]);
        }
        return sources;
    }
}
