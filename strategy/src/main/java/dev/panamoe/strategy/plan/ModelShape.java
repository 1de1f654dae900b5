package dev.panamoe.strategy.plan;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the parallel plan and the cost model need to know of a GPT-MoE model, without the
 * model itself (strategy never touches native code): block i is an MoE block when
 * (i + 1) % moeEvery == 0. gatedExperts means an expert's first matrix is [hidden, 2 * expertFfn]
 * (SwiGLU) rather than [hidden, expertFfn]. moeOnly means the model is its MoE layers alone (no
 * embeddings, attention, dense FFNs or LM head: only routers and experts), as in a paper's
 * single-layer measurement; then seq is the tokens one rank routes per sequence.
 */
public record ModelShape(String name, int vocab, int seq, int layers, int hidden, int heads, int moeEvery,
        int experts, int topK, int expertFfn, boolean gatedExperts, int denseFfn, boolean tiedEmbeddings,
        boolean moeOnly) {

    /** The prefix of {@link #parseMoeLayer}'s specs. */
    public static final String MOE_LAYER = "moe-layer";

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

    /** A GPT-MoE model: embeddings, blocks of attention and a dense or MoE FFN, an LM head. */
    public ModelShape(String name, int vocab, int seq, int layers, int hidden, int heads, int moeEvery, int experts,
            int topK, int expertFfn, boolean gatedExperts, int denseFfn, boolean tiedEmbeddings) {
        this(name, vocab, seq, layers, hidden, heads, moeEvery, experts, topK, expertFfn, gatedExperts, denseFfn,
                tiedEmbeddings, false);
    }

    /**
     * One MoE layer alone, from {@code moe-layer:hidden=H,ffn=F,tokens=T[,top-k=K][,gated=true|false]}:
     * T tokens per rank and micro-batch, top-k 2 and ungated experts unless given; the experts
     * come from the caller (a trace's).
     */
    public static ModelShape parseMoeLayer(String spec, int experts) {
        String prefix = MOE_LAYER + ":";
        if (spec == null || !spec.startsWith(prefix)) {
            throw new IllegalArgumentException("model: \"" + spec + "\" is not " + prefix
                    + "hidden=H,ffn=F,tokens=T[,top-k=K][,gated=true|false]");
        }
        Map<String, String> keys = new LinkedHashMap<>();
        for (String part : spec.substring(prefix.length()).split(",")) {
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("model: \"" + part + "\" in \"" + spec + "\" is not key=value");
            }
            String key = part.substring(0, eq).strip();
            if (!List.of("hidden", "ffn", "tokens", "top-k", "gated").contains(key)) {
                throw new IllegalArgumentException("model: unknown key \"" + key + "\" in \"" + spec
                        + "\" (expected hidden, ffn, tokens, top-k, gated)");
            }
            keys.put(key, part.substring(eq + 1).strip());
        }
        int hidden = intKey(spec, keys, "hidden", null);
        int ffn = intKey(spec, keys, "ffn", null);
        int tokens = intKey(spec, keys, "tokens", null);
        int topK = intKey(spec, keys, "top-k", 2);
        String gated = keys.getOrDefault("gated", "false");
        if (!gated.equals("true") && !gated.equals("false")) {
            throw new IllegalArgumentException("model: gated must be true or false, got \"" + gated + "\"");
        }
        return new ModelShape(spec, 1, tokens, 1, hidden, 1, 1, experts, topK, ffn, gated.equals("true"), 1, true,
                true);
    }

    private static int intKey(String spec, Map<String, String> keys, String key, Integer fallback) {
        String v = keys.get(key);
        if (v == null) {
            if (fallback == null) {
                throw new IllegalArgumentException("model: \"" + spec + "\" lacks " + key + "=");
            }
            return fallback;
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("model: " + key + " must be a whole number, got \"" + v + "\"");
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
