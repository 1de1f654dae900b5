package dev.panamoe.runtime.model;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The initial value of every parameter of a GPT-MoE model as a function of (model seed,
 * parameter name) alone, GPT-2's scheme: biases 0, norm weights 1, the projections that write
 * into the residual stream (attention and FFN output, expert W2) normal with std
 * 0.02 / sqrt(2 * layers), everything else (embeddings, qkv, FFN input, router gate, expert W1)
 * normal with std 0.02. Because a value does not depend on which other parameters exist, a
 * rank of a parallel run computes the full tensor of a parameter and keeps its shard, and gets
 * exactly the values the single-device {@link GptMoeModel} starts from.
 */
public final class ParameterInit {
    static final double STD = 0.02;

    private ParameterInit() {
    }

    /** The numel initial values of the parameter called name (e.g. "blocks.1.attn.proj.weight"). */
    public static float[] values(GptMoeConfig config, long seed, String name, int numel) {
        float[] v = new float[numel];
        if (name.endsWith(".bias")) {
            return v;
        }
        if (isNormWeight(name)) {
            Arrays.fill(v, 1f);
            return v;
        }
        double std = writesResidual(name) ? STD / Math.sqrt(2.0 * config.layers()) : STD;
        SplittableRandom rng = new SplittableRandom(nameSeed(seed, name));
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (std * rng.nextGaussian());
        }
        return v;
    }

    /** "lnf.weight", "blocks.3.ln1.weight", "blocks.3.ln2.weight". */
    private static boolean isNormWeight(String name) {
        return name.equals("lnf.weight") || name.endsWith(".ln1.weight") || name.endsWith(".ln2.weight");
    }

    private static boolean writesResidual(String name) {
        return name.endsWith(".attn.proj.weight") || name.endsWith(".mlp.proj.weight") || name.endsWith(".w2");
    }

    /** FNV-1a of the name, starting from the model seed. */
    private static long nameSeed(long seed, String name) {
        long h = seed;
        for (int i = 0; i < name.length(); i++) {
            h = (h ^ name.charAt(i)) * 0x100000001b3L;
        }
        return h;
    }
}
