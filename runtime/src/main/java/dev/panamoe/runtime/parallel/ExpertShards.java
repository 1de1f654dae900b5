package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Activation;
import java.util.List;

/**
 * How an expert's weights are split over a tensor-parallel group of tp ranks (expert TP, as
 * Megatron's column- then row-parallel MLP), and back:
 * <pre>
 *   W1 [hidden, width(ffn)]  column-sharded: shard t keeps the columns [t * f, (t + 1) * f) of
 *                            each activation-input half (f = ffn / tp); for SwiGLU, whose W1 is
 *                            [gate | up], shard t = [gate columns of t | up columns of t]
 *   W2 [ffn, hidden]         row-sharded: shard t keeps rows [t * f, (t + 1) * f)
 * </pre>
 * so act(x · W1_t) · W2_t summed over t equals act(x · W1) · W2. Arrays are row-major.
 */
public final class ExpertShards {
    private ExpertShards() {
    }

    /** Shard tpIndex of a full W1 [hidden, act.inputWidth(ffn)]: [hidden, act.inputWidth(ffn / tp)]. */
    public static float[] shardW1(float[] full, int hidden, int ffn, Activation act, int tpIndex, int tp) {
        checkShard(ffn, tpIndex, tp);
        checkLength("full", full, (long) hidden * act.inputWidth(ffn));
        float[] shard = new float[hidden * act.inputWidth(ffn / tp)];
        copyW1Columns(full, shard, hidden, ffn, act, tpIndex, tp, true);
        return shard;
    }

    /** Shard tpIndex of a full W2 [ffn, hidden]: its rows [tpIndex * ffn / tp, (tpIndex + 1) * ffn / tp). */
    public static float[] shardW2(float[] full, int ffn, int hidden, int tpIndex, int tp) {
        checkShard(ffn, tpIndex, tp);
        checkLength("full", full, (long) ffn * hidden);
        int rows = ffn / tp;
        float[] shard = new float[rows * hidden];
        System.arraycopy(full, tpIndex * rows * hidden, shard, 0, shard.length);
        return shard;
    }

    /** The full W1 from its tp shards, in tensor-parallel order (the inverse of {@link #shardW1}). */
    public static float[] gatherW1(List<float[]> shards, int hidden, int ffn, Activation act) {
        int tp = shards.size();
        float[] full = new float[hidden * act.inputWidth(ffn)];
        for (int t = 0; t < tp; t++) {
            checkShard(ffn, t, tp);
            checkLength("shards[" + t + "]", shards.get(t), (long) hidden * act.inputWidth(ffn / tp));
            copyW1Columns(full, shards.get(t), hidden, ffn, act, t, tp, false);
        }
        return full;
    }

    /** The full W2 from its tp shards, in tensor-parallel order (the inverse of {@link #shardW2}). */
    public static float[] gatherW2(List<float[]> shards, int ffn, int hidden) {
        int tp = shards.size();
        float[] full = new float[ffn * hidden];
        for (int t = 0; t < tp; t++) {
            checkShard(ffn, t, tp);
            checkLength("shards[" + t + "]", shards.get(t), (long) ffn / tp * hidden);
            System.arraycopy(shards.get(t), 0, full, t * (ffn / tp) * hidden, ffn / tp * hidden);
        }
        return full;
    }

    /** Copies shard t's columns of every activation-input half between full and shard, either way. */
    private static void copyW1Columns(float[] full, float[] shard, int hidden, int ffn, Activation act, int t, int tp,
            boolean toShard) {
        int f = ffn / tp;
        int fullWidth = act.inputWidth(ffn);
        int shardWidth = act.inputWidth(f);
        int halves = fullWidth / ffn;
        for (int r = 0; r < hidden; r++) {
            for (int half = 0; half < halves; half++) {
                int fullAt = r * fullWidth + half * ffn + t * f;
                int shardAt = r * shardWidth + half * f;
                if (toShard) {
                    System.arraycopy(full, fullAt, shard, shardAt, f);
                } else {
                    System.arraycopy(shard, shardAt, full, fullAt, f);
                }
            }
        }
    }

    private static void checkShard(int ffn, int tpIndex, int tp) {
        if (tp < 1 || ffn % tp != 0) {
            throw new IllegalArgumentException("tp: " + tp + " must be >= 1 and divide ffn " + ffn);
        }
        if (tpIndex < 0 || tpIndex >= tp) {
            throw new IllegalArgumentException("tpIndex: " + tpIndex + " is outside [0, tp=" + tp + ")");
        }
    }

    private static void checkLength(String arg, float[] values, long expected) {
        if (values == null || values.length != expected) {
            throw new IllegalArgumentException(arg + ": expected " + expected + " values, got "
                    + (values == null ? "null" : values.length));
        }
    }
}
