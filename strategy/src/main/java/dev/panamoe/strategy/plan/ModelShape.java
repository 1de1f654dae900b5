package dev.panamoe.strategy.plan;

/**
 * What the parallel plan and the cost model need to know of a GPT-MoE model, without the
 * model itself (strategy never touches native code): block i is an MoE block when
 * (i + 1) % moeEvery == 0. gatedExperts means an expert's first matrix is [hidden, 2 * expertFfn]
 * (SwiGLU) rather than [hidden, expertFfn].
 */
public record ModelShape(String name, int vocab, int seq, int layers, int hidden, int heads, int moeEvery,
        int experts, int topK, int expertFfn, boolean gatedExperts, int denseFfn, boolean tiedEmbeddings) {

    public ModelShape {
        positive("vocab", vocab);
        positive("seq", seq);
        positive("layers", layers);
        positive("hidden", hidden);
        positive("heads", heads);
        positive("moeEvery", moeEvery);
        positive("experts", experts);
        positive("expertFfn", expertFfn);
        positive("denseFfn", denseFfn);
        if (topK < 1 || topK > experts) {
            throw new IllegalArgumentException("topK: must be in [1, experts=" + experts + "], got " + topK);
        }
        if (hidden % heads != 0) {
            throw new IllegalArgumentException("heads: " + heads + " does not divide hidden " + hidden);
        }
    }

    public boolean isMoeBlock(int layer) {
        return (layer + 1) % moeEvery == 0;
    }

    public int moeLayers() {
        return layers / moeEvery;
    }

    /** Parameters of one expert (W1 and W2, no biases). */
    public long expertParameters() {
        return (long) hidden * expertFfn * (gatedExperts ? 3 : 2);
    }

    private static void positive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(name + ": must be >= 1, got " + v);
        }
    }
}
