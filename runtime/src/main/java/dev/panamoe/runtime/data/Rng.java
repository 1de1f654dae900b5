package dev.panamoe.runtime.data;

/**
 * SplitMix64 (Steele, Lea and Flood, 2014), written out so that the data stream is fixed by this
 * file alone: a checkpoint taken on one JDK resumes the same tokens on another, whatever the
 * JDK's own generators do.
 *
 * <p>Every sequence of a corpus gets its own generator, seeded by {@link #seedFor} from (corpus
 * seed, stream, sequence index); so a batch depends only on its position, never on what was drawn
 * before it.
 */
final class Rng {

    private static final long GOLDEN_GAMMA = 0x9e3779b97f4a7c15L;

    private long state;

    Rng(long seed) {
        this.state = seed;
    }

    /** A well-mixed seed for item {@code index} of stream {@code stream} under {@code seed}. */
    static long seedFor(long seed, long stream, long index) {
        return mix(mix(mix(seed + GOLDEN_GAMMA) + stream + GOLDEN_GAMMA) + index + GOLDEN_GAMMA);
    }

    long nextLong() {
        return mix(state += GOLDEN_GAMMA);
    }

    /** The SplitMix64 output function (Stafford's variant 13). */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /** Uniform in [0, 1), 53 random bits. */
    double nextDouble() {
        return (nextLong() >>> 11) * 0x1.0p-53;
    }

    /** Uniform in (0, 1]: safe to take the logarithm of. */
    double nextPositiveDouble() {
        return 1.0 - nextDouble();
    }

    /** Uniform in [0, bound), without modulo bias (rejection as in java.util.Random). */
    long nextLong(long bound) {
        if (bound <= 0) throw new IllegalArgumentException("bound must be positive, got " + bound);
        long u = nextLong() >>> 1;
        long r;
        while (u - (r = u % bound) + (bound - 1) < 0) u = nextLong() >>> 1;
        return r;
    }

    int nextInt(int bound) {
        return (int) nextLong(bound);
    }

    /** Standard normal by Box-Muller; the second variate is discarded to keep no hidden state. */
    double nextGaussian() {
        double radius = Math.sqrt(-2.0 * Math.log(nextPositiveDouble()));
        return radius * Math.cos(2.0 * Math.PI * nextDouble());
    }

    /** Gamma(shape, 1) by Marsaglia and Tsang (2000); shape below 1 through the boost G(a+1) U^(1/a). */
    double nextGamma(double shape) {
        if (shape < 1.0) return nextGamma(shape + 1.0) * Math.pow(nextPositiveDouble(), 1.0 / shape);
        double d = shape - 1.0 / 3.0;
        double c = 1.0 / Math.sqrt(9.0 * d);
        while (true) {
            double x = nextGaussian();
            double v = 1.0 + c * x;
            if (v <= 0) continue;
            v = v * v * v;
            double u = nextPositiveDouble();
            if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
        }
    }
}
