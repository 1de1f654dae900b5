package dev.panamoe.runtime.model;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.DropPolicy;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.ScoreFunction;
import dev.panamoe.runtime.report.Plural;
import dev.panamoe.strategy.plan.ModelShape;
import java.util.List;
import java.util.Locale;

/**
 * Shape of a GPT-MoE model: a GPT-2 style decoder of {@code layers} pre-norm blocks where the FFN
 * of every {@code moeEvery}-th block (blocks moeEvery-1, 2*moeEvery-1, ...) is a Mixture of
 * Experts and the others are dense (linear, GeLU, linear).
 *
 * @param vocab            token ids are in [0, vocab)
 * @param maxSeq           the longest sequence (rows of the position embedding)
 * @param layers           transformer blocks
 * @param hidden           model width C, divisible by heads
 * @param heads            attention heads
 * @param moeEvery         every moeEvery-th block is an MoE block, 1..layers
 * @param experts          experts per MoE layer
 * @param topK             experts per token, 1..experts (weights renormalised over the top-k when topK > 1)
 * @param expertFfn        hidden size of one expert's FFN (SmartMoE's default 4 * hidden / topK keeps
 *                         the FLOPs per token of the dense model)
 * @param denseFfn         hidden size of the dense FFNs (4 * hidden by default)
 * @param expertActivation the experts' activation (GELU, SILU or SWIGLU)
 * @param scoreFunction    the router's score function
 * @param capacityFactor   rows per expert = ceil(tokens * topK * factor / experts), or
 *                         {@link MoELayer.Config#DROPLESS} for no limit
 * @param dropPolicy       which slots an expert over capacity keeps
 * @param auxLossCoeff     weight of the load-balancing loss (per MoE layer)
 * @param zLossCoeff       weight of the router z-loss (per MoE layer)
 * @param tiedEmbeddings   the LM head reuses the token embedding wte
 * @param norm             LayerNorm or RMSNorm
 */
public record GptMoeConfig(int vocab, int maxSeq, int layers, int hidden, int heads, int moeEvery, int experts,
        int topK, int expertFfn, int denseFfn, Activation expertActivation, ScoreFunction scoreFunction,
        double capacityFactor, DropPolicy dropPolicy, float auxLossCoeff, float zLossCoeff, boolean tiedEmbeddings,
        Norm norm) {

    private static final List<String> PRESETS = List.of("tiny", "small", "gpt-moe-l16-h2560", "gpt-moe-l8-h2048",
            "gpt-moe-l16-h1536");

    public GptMoeConfig {
        positive("vocab", vocab);
        positive("maxSeq", maxSeq);
        positive("layers", layers);
        positive("hidden", hidden);
        positive("heads", heads);
        check(hidden % heads == 0, "hidden: must be divisible by heads=" + heads + ", got " + hidden);
        check(moeEvery >= 1 && moeEvery <= layers, "moeEvery: must be in [1, layers=" + layers + "], got " + moeEvery);
        positive("experts", experts);
        check(topK >= 1 && topK <= experts, "topK: must be in [1, experts=" + experts + "], got " + topK);
        positive("expertFfn", expertFfn);
        positive("denseFfn", denseFfn);
        notNull("expertActivation", expertActivation);
        notNull("scoreFunction", scoreFunction);
        check(capacityFactor > 0, "capacityFactor: must be > 0 (or DROPLESS), got " + capacityFactor);
        notNull("dropPolicy", dropPolicy);
        check(auxLossCoeff >= 0 && Float.isFinite(auxLossCoeff),
                "auxLossCoeff: must be finite and >= 0, got " + auxLossCoeff);
        check(zLossCoeff >= 0 && Float.isFinite(zLossCoeff), "zLossCoeff: must be finite and >= 0, got " + zLossCoeff);
        notNull("norm", norm);
        // Every parameter tensor is initialised from one Java array.
        check((long) Math.max(vocab, maxSeq) * hidden <= Integer.MAX_VALUE,
                "vocab: " + vocab + " x hidden " + hidden + " is too large for one tensor");
        try {
            count(vocab, maxSeq, layers, hidden, moeEvery, experts, expertFfn, denseFfn, expertActivation,
                    tiedEmbeddings, norm);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("experts: " + layers + " blocks of hidden " + hidden + " with " + experts
                    + " experts have more parameters than a 64-bit count holds", e);
        }
    }

    /** The preset names, in the order {@link #preset} knows them. */
    public static List<String> presetNames() {
        return PRESETS;
    }

    /**
     * A named shape:
     * <ul>
     * <li>{@code tiny}: the demo on the synthetic corpus (vocab 64, seq 64): 2 blocks, hidden 64,
     * 4 heads, both FFNs MoE with 8 experts top-2 (expert ffn 128), tied embeddings;
     * <li>{@code small}: vocab 256, seq 256, 6 blocks, hidden 256, 8 heads, every 2nd FFN MoE
     * with 8 experts top-2 (expert ffn 512);
     * <li>{@code gpt-moe-l16-h2560}, {@code gpt-moe-l8-h2048}, {@code gpt-moe-l16-h1536}:
     * SmartMoE's GPT-MoE shapes for planning and simulation — GPT-2's vocabulary (50257), seq
     * 1024, 16 heads, every FFN MoE, top-2, expert ffn 4 * hidden / 2, dropless; 16, 16 and 32
     * experts (override with {@link #toBuilder()}).
     * </ul>
     */
    public static GptMoeConfig preset(String name) {
        return switch (name) {
            case "tiny" -> builder().vocab(64).maxSeq(64).layers(2).hidden(64).heads(4).moeEvery(1).experts(8)
                    .topK(2).build();
            case "small" -> builder().vocab(256).maxSeq(256).layers(6).hidden(256).heads(8).moeEvery(2).experts(8)
                    .topK(2).build();
            case "gpt-moe-l16-h2560" -> smartMoe(16, 2560, 16);
            case "gpt-moe-l8-h2048" -> smartMoe(8, 2048, 16);
            case "gpt-moe-l16-h1536" -> smartMoe(16, 1536, 32);
            case null, default -> throw new IllegalArgumentException("preset: unknown name '" + name + "'; known: "
                    + String.join(", ", PRESETS));
        };
    }

    private static GptMoeConfig smartMoe(int layers, int hidden, int experts) {
        return builder().vocab(50257).maxSeq(1024).layers(layers).hidden(hidden).heads(16).moeEvery(1)
                .experts(experts).topK(2).build();
    }

    /** Whether block `layer` (0-based) has an MoE FFN. */
    public boolean isMoeBlock(int layer) {
        return (layer + 1) % moeEvery == 0;
    }

    public int moeLayerCount() {
        return layers / moeEvery;
    }

    /** The configuration of each MoE layer. Top-1 keeps the raw score as the weight (Switch). */
    public MoELayer.Config moeConfig() {
        return MoELayer.Config.builder().hidden(hidden).ffn(expertFfn).experts(experts).topK(topK)
                .activation(expertActivation).scoreFunction(scoreFunction).renormalize(topK > 1)
                .capacityFactor(capacityFactor).dropPolicy(dropPolicy).auxLossCoeff(auxLossCoeff)
                .zLossCoeff(zLossCoeff).build();
    }

    /** What the parallel plan and the cost model need to know of this model (strategy's view of it). */
    public ModelShape shape() {
        return shape("gpt-moe");
    }

    /** The same under name, e.g. the preset's, as plans and simulations report it. */
    public ModelShape shape(String name) {
        return new ModelShape(name, vocab, maxSeq, layers, hidden, heads, moeEvery, experts, topK, expertFfn,
                expertActivation == Activation.SWIGLU, denseFfn, tiedEmbeddings);
    }

    /** Parameters of one expert: W1 [hidden, inputWidth(ffn)] and W2 [ffn, hidden]. */
    public long expertParameterCount() {
        return expertCount(hidden, expertFfn, expertActivation);
    }

    private static long expertCount(int hidden, int expertFfn, Activation activation) {
        return (long) hidden * activation.inputWidth(expertFfn) + (long) expertFfn * hidden;
    }

    /** Number of trainable scalars, counted from the shapes (nothing is allocated). */
    public long parameterCount() {
        return count(vocab, maxSeq, layers, hidden, moeEvery, experts, expertFfn, denseFfn, expertActivation,
                tiedEmbeddings, norm);
    }

    /** The parameter count of a shape; ArithmeticException when it overflows a long (the constructor refuses those). */
    private static long count(int vocab, int maxSeq, int layers, int hidden, int moeEvery, int experts, int expertFfn,
            int denseFfn, Activation expertActivation, boolean tiedEmbeddings, Norm norm) {
        long c = hidden;
        long normParams = norm == Norm.LAYER ? 2 * c : c;
        long attention = c * 3 * c + 3 * c + c * c + c;
        long dense = c * denseFfn + denseFfn + (long) denseFfn * c + c;
        long moe = Math.addExact(c * experts, Math.multiplyExact(experts, expertCount(hidden, expertFfn, expertActivation)));
        int moeLayers = layers / moeEvery;
        long blocks = Math.addExact(Math.addExact(layers * (2 * normParams + attention),
                Math.multiplyExact(moeLayers, moe)), (layers - moeLayers) * dense);
        long embeddings = (long) vocab * c + (long) maxSeq * c;
        long head = tiedEmbeddings ? 0 : (long) vocab * c;
        return Math.addExact(blocks, embeddings + normParams + head);
    }

    /** Parameters one token uses: all but the experts its MoE layers do not route it to. */
    public long activeParameterCount() {
        return parameterCount() - (long) moeLayerCount() * (experts - topK) * expertParameterCount();
    }

    /** One line for logs and reports. */
    public String describe() {
        String capacity = capacityFactor == MoELayer.Config.DROPLESS ? "dropless"
                : String.format(Locale.ROOT, "capacity factor %.2f (%s)", capacityFactor,
                        dropPolicy.name().toLowerCase(Locale.ROOT));
        return String.format(Locale.ROOT,
                "GPT-MoE: %s, hidden %d, %s, vocab %d, seq %d, dense ffn %d; MoE in %s: %s"
                        + " top-%d, expert ffn %d (%s), %s router, %s; aux loss %s, z-loss %s; %s, %s embeddings;"
                        + " %s parameters (%s active per token)",
                Plural.of(layers, "block"), hidden, Plural.of(heads, "head"), vocab, maxSeq, denseFfn,
                moeEvery == 1 ? "every block" : "every " + moeEvery + " blocks", Plural.of(experts, "expert"), topK,
                expertFfn, lower(expertActivation), lower(scoreFunction), capacity, auxLossCoeff, zLossCoeff,
                norm == Norm.LAYER ? "LayerNorm" : "RMSNorm", tiedEmbeddings ? "tied" : "untied",
                humanCount(parameterCount()), humanCount(activeParameterCount()));
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * A builder holding this configuration. The FFN sizes are kept only where they differ from
     * the defaults derived from hidden and topK, so {@code preset("small").toBuilder().hidden(512)}
     * also rescales them.
     */
    public Builder toBuilder() {
        Builder b = new Builder().vocab(vocab).maxSeq(maxSeq).layers(layers).hidden(hidden).heads(heads)
                .moeEvery(moeEvery).experts(experts).topK(topK).expertActivation(expertActivation)
                .scoreFunction(scoreFunction).capacityFactor(capacityFactor).dropPolicy(dropPolicy)
                .auxLossCoeff(auxLossCoeff).zLossCoeff(zLossCoeff).tiedEmbeddings(tiedEmbeddings).norm(norm);
        if (expertFfn != Builder.defaultExpertFfn(hidden, topK)) {
            b.expertFfn(expertFfn);
        }
        if (denseFfn != Builder.defaultDenseFfn(hidden)) {
            b.denseFfn(denseFfn);
        }
        return b;
    }

    /**
     * Defaults: moeEvery 1, top-2, expertFfn 4 * hidden / topK, denseFfn 4 * hidden, GeLU experts,
     * softmax router, dropless (drop by probability once a capacity factor is set), aux loss
     * 0.01, z-loss 0.001, tied embeddings, LayerNorm. vocab, maxSeq, layers, hidden, heads and
     * experts must be set.
     */
    public static final class Builder {
        private static final int DERIVED = 0;

        private int vocab;
        private int maxSeq;
        private int layers;
        private int hidden;
        private int heads;
        private int moeEvery = 1;
        private int experts;
        private int topK = 2;
        private int expertFfn = DERIVED;
        private int denseFfn = DERIVED;
        private Activation expertActivation = Activation.GELU;
        private ScoreFunction scoreFunction = ScoreFunction.SOFTMAX;
        private double capacityFactor = MoELayer.Config.DROPLESS;
        private DropPolicy dropPolicy = DropPolicy.BY_PROBABILITY;
        private float auxLossCoeff = 0.01f;
        private float zLossCoeff = 0.001f;
        private boolean tiedEmbeddings = true;
        private Norm norm = Norm.LAYER;

        private Builder() {
        }

        static int defaultExpertFfn(int hidden, int topK) {
            return Math.max(1, 4 * hidden / Math.max(1, topK));
        }

        static int defaultDenseFfn(int hidden) {
            return 4 * hidden;
        }

        public Builder vocab(int v) { vocab = v; return this; }
        public Builder maxSeq(int v) { maxSeq = v; return this; }
        public Builder layers(int v) { layers = v; return this; }
        public Builder hidden(int v) { hidden = v; return this; }
        public Builder heads(int v) { heads = v; return this; }
        public Builder moeEvery(int v) { moeEvery = v; return this; }
        public Builder experts(int v) { experts = v; return this; }
        public Builder topK(int v) { topK = v; return this; }
        public Builder expertFfn(int v) { expertFfn = v; return this; }
        public Builder denseFfn(int v) { denseFfn = v; return this; }
        public Builder expertActivation(Activation v) { expertActivation = v; return this; }
        public Builder scoreFunction(ScoreFunction v) { scoreFunction = v; return this; }
        public Builder capacityFactor(double v) { capacityFactor = v; return this; }
        public Builder dropless() { capacityFactor = MoELayer.Config.DROPLESS; return this; }
        public Builder dropPolicy(DropPolicy v) { dropPolicy = v; return this; }
        public Builder auxLossCoeff(float v) { auxLossCoeff = v; return this; }
        public Builder zLossCoeff(float v) { zLossCoeff = v; return this; }
        public Builder tiedEmbeddings(boolean v) { tiedEmbeddings = v; return this; }
        public Builder norm(Norm v) { norm = v; return this; }

        public GptMoeConfig build() {
            return new GptMoeConfig(vocab, maxSeq, layers, hidden, heads, moeEvery, experts, topK,
                    expertFfn == DERIVED ? defaultExpertFfn(hidden, topK) : expertFfn,
                    denseFfn == DERIVED ? defaultDenseFfn(hidden) : denseFfn, expertActivation, scoreFunction,
                    capacityFactor, dropPolicy, auxLossCoeff, zLossCoeff, tiedEmbeddings, norm);
        }
    }

    private static void positive(String field, int value) {
        check(value >= 1, field + ": must be >= 1, got " + value);
    }

    private static void notNull(String field, Object value) {
        check(value != null, field + ": must not be null");
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }

    private static String humanCount(long n) {
        return n >= 1_000_000_000 ? String.format(Locale.ROOT, "%.2fB", n / 1e9)
                : n >= 1_000_000 ? String.format(Locale.ROOT, "%.2fM", n / 1e6)
                : n >= 1_000 ? String.format(Locale.ROOT, "%.1fK", n / 1e3) : Long.toString(n);
    }
}
