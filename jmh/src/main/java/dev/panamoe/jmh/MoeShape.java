package dev.panamoe.jmh;

/**
 * The MoE layer shapes benchmarked on the CPU (issue 2), and the FLOPs we credit them with:
 * real (unpadded) expert rows only, forward = 2 * tokens * k * 3 * hidden * ffn (SwiGLU: gate,
 * up and down projections), forward + backward = 3 x forward.
 */
public record MoeShape(String name, int tokens, int hidden, int ffn, int experts, int topK) {

    public static final MoeShape MIXTRAL_4 = new MoeShape("mixtral/4", 4096, 1024, 3584, 8, 2);
    public static final MoeShape DEEPSEEK_4 = new MoeShape("deepseek/4", 4096, 1792, 512, 64, 8);
    /** A few milliseconds of work: for checking that a benchmark runs (the bench sitting's --quick), not for timing. */
    public static final MoeShape TINY = new MoeShape("tiny", 256, 64, 128, 8, 2);

    public static MoeShape named(String name) {
        for (MoeShape s : new MoeShape[] {MIXTRAL_4, DEEPSEEK_4, TINY}) {
            if (s.name.equals(name)) return s;
        }
        throw new IllegalArgumentException("shape: unknown MoE shape '" + name + "', expected mixtral/4, deepseek/4 or tiny");
    }

    public double forwardFlops() {
        return 2.0 * tokens * topK * 3.0 * hidden * ffn;
    }

    public double forwardBackwardFlops() {
        return 3.0 * forwardFlops();
    }
}
