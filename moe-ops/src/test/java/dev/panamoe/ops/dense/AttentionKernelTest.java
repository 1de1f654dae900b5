package dev.panamoe.ops.dense;

import static dev.panamoe.ops.dense.DenseTestSupport.BF16;
import static dev.panamoe.ops.dense.DenseTestSupport.DTYPES;
import static dev.panamoe.ops.dense.DenseTestSupport.F32;
import static dev.panamoe.ops.dense.DenseTestSupport.LIB;
import static dev.panamoe.ops.dense.DenseTestSupport.NULL;
import static dev.panamoe.ops.dense.DenseTestSupport.assertClose;
import static dev.panamoe.ops.dense.DenseTestSupport.assertDeterministic;
import static dev.panamoe.ops.dense.DenseTestSupport.assertInvalid;
import static dev.panamoe.ops.dense.DenseTestSupport.assertOk;
import static dev.panamoe.ops.dense.DenseTestSupport.bytes;
import static dev.panamoe.ops.dense.DenseTestSupport.dot;
import static dev.panamoe.ops.dense.DenseTestSupport.floats;
import static dev.panamoe.ops.dense.DenseTestSupport.nans;
import static dev.panamoe.ops.dense.DenseTestSupport.numericGradient;
import static dev.panamoe.ops.dense.DenseTestSupport.read;
import static dev.panamoe.ops.dense.DenseTestSupport.toDouble;
import static dev.panamoe.ops.dense.DenseTestSupport.name;
import static dev.panamoe.ops.dense.DenseTestSupport.rounding;
import static dev.panamoe.ops.dense.DenseTestSupport.uniform;
import static dev.panamoe.ops.kernels.KernelTestSupport.atLevel;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.kernels.KernelTestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** pmoe_attention_forward/backward against a double reference and its finite differences. */
class AttentionKernelTest {

    /**
     * Causal attention on qkv [B, T, 3C] (row = q | k | v, head h at columns h*D..): returns out
     * [B, T, C]; att (if not null) [B, H, T, T] receives the probabilities, 0 above the diagonal.
     * With dtype bf16 the probabilities meet v rounded to bf16, as in the kernel (att keeps them
     * unrounded).
     */
    static double[] reference(int dtype, int batch, int seq, int channels, int heads, double[] qkv, double[] att) {
        int d = channels / heads, row = 3 * channels;
        double scale = 1 / Math.sqrt(d);
        double[] out = new double[batch * seq * channels];
        double[] p = new double[seq];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int t = 0; t < seq; t++) {
                    int q = (b * seq + t) * row + h * d;
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int s = 0; s <= t; s++) {
                        int k = (b * seq + s) * row + channels + h * d;
                        double score = 0;
                        for (int i = 0; i < d; i++) score += qkv[q + i] * qkv[k + i];
                        p[s] = score * scale;
                        max = Math.max(max, p[s]);
                    }
                    for (int s = 0; s <= t; s++) sum += p[s] = Math.exp(p[s] - max);
                    for (int s = 0; s <= t; s++) {
                        p[s] /= sum;
                        int v = (b * seq + s) * row + 2 * channels + h * d;
                        double w = operand(dtype, p[s]);
                        for (int i = 0; i < d; i++) out[(b * seq + t) * channels + h * d + i] += w * qkv[v + i];
                    }
                    if (att != null) {
                        int at = ((b * heads + h) * seq + t) * seq;
                        Arrays.fill(att, at, at + seq, 0);
                        System.arraycopy(p, 0, att, at, t + 1);
                    }
                }
            }
        }
        return out;
    }

    /**
     * The gradient of {@code <dout, out>} with respect to qkv, analytically in double: with
     * dP_ts = dout_t . v_s and dS = p * (dP - sum_s p dP) * scale, dq = dS k, dk = dS^T q and
     * dv = p^T dout, p and dS rounded to bf16 in these three products when dtype is bf16, as in
     * the kernel. Returns {dqkv, magnitude, flips}. magnitude: the same sums of absolute values
     * (p from the signed inputs; the mean is added, not subtracted), the scale of the terms each
     * f32 sum rounds. flips (bf16 only): the most the kernel's roundings of its own p and dS,
     * off in f32 by at most attErr * p and dsErr * (dS's magnitude), can add.
     */
    static double[][] referenceBackward(int dtype, int batch, int seq, int channels, int heads, double[] qkv,
            double[] dout, double attErr, double dsErr) {
        int d = channels / heads, row = 3 * channels;
        double scale = 1 / Math.sqrt(d);
        double[] att = new double[batch * heads * seq * seq];
        reference(dtype, batch, seq, channels, heads, qkv, att);
        double[] x = qkv, g = dout;
        double[] dqkv = new double[qkv.length], magnitude = new double[qkv.length], flips = new double[qkv.length];
        double[] ds = new double[seq], dsAbs = new double[seq];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int t = 0; t < seq; t++) {
                    int at = ((b * heads + h) * seq + t) * seq, gt = (b * seq + t) * channels + h * d;
                    int qt = (b * seq + t) * row + h * d;
                    double mean = 0, meanAbs = 0;
                    for (int s = 0; s <= t; s++) {
                        int vs = (b * seq + s) * row + 2 * channels + h * d;
                        ds[s] = dsAbs[s] = 0;
                        for (int i = 0; i < d; i++) {
                            ds[s] += g[gt + i] * x[vs + i];
                            dsAbs[s] += Math.abs(g[gt + i] * x[vs + i]);
                        }
                        mean += att[at + s] * ds[s];
                        meanAbs += att[at + s] * dsAbs[s];
                    }
                    for (int s = 0; s <= t; s++) {
                        double p = att[at + s], dpre = p * (ds[s] - mean) * scale;
                        double dpreAbs = p * (dsAbs[s] + meanAbs) * scale;
                        double pFlip = dtype == BF16 ? bf16Flip(p, attErr * p) : 0;
                        double dFlip = dtype == BF16 ? bf16Flip(dpre, dsErr * dpreAbs) : 0;
                        double pOp = operand(dtype, p), dOp = operand(dtype, dpre);
                        int ks = (b * seq + s) * row + channels + h * d;
                        for (int i = 0; i < d; i++) {
                            dqkv[qt + i] += dOp * x[ks + i];
                            dqkv[ks + i] += dOp * x[qt + i];
                            dqkv[ks + channels + i] += pOp * g[gt + i];
                            magnitude[qt + i] += dpreAbs * Math.abs(x[ks + i]);
                            magnitude[ks + i] += dpreAbs * Math.abs(x[qt + i]);
                            magnitude[ks + channels + i] += p * Math.abs(g[gt + i]);
                            flips[qt + i] += dFlip * Math.abs(x[ks + i]);
                            flips[ks + i] += dFlip * Math.abs(x[qt + i]);
                            flips[ks + channels + i] += pFlip * Math.abs(g[gt + i]);
                        }
                    }
                }
            }
        }
        return new double[][] {dqkv, magnitude, flips};
    }

    /** A probability or score gradient as the kernel's products take it: rounded to bf16 when dtype is bf16. */
    static double operand(int dtype, double x) {
        return dtype == BF16 ? bf16(x) : x;
    }

    /** x rounded to bf16 (8 significant bits, to nearest even) straight from double. */
    static double bf16(double x) {
        if (x == 0 || !Double.isFinite(x)) return x;
        int e = Math.getExponent(x) - 7;
        return Math.scalb(Math.rint(Math.scalb(x, -e)), e);
    }

    /**
     * The most by which the bf16 rounding of a value within e of x can differ from x's (rounding is
     * monotone): 0 unless a rounding boundary lies within e of x, else one bf16 step.
     */
    static double bf16Flip(double x, double e) {
        double r = bf16(x);
        return Math.max(bf16(x + e) - r, r - bf16(x - e));
    }

    /**
     * Per element of out, the most that the kernel's bf16 roundings of its own probabilities (each
     * within relErr * p of the reference's, in f32) can move it from the reference's (bf16Flip per
     * term): 0 in f32, and for non-finite probabilities (rows a NaN poisons).
     */
    static double[] probabilityFlips(int dtype, int batch, int seq, int channels, int heads, double[] qkv,
            double[] att, double relErr) {
        int d = channels / heads, row = 3 * channels;
        double[] flips = new double[batch * seq * channels];
        if (dtype != BF16) return flips;
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int t = 0; t < seq; t++) {
                    for (int s = 0; s <= t; s++) {
                        double p = att[((b * heads + h) * seq + t) * seq + s];
                        if (!Double.isFinite(p)) continue;
                        double flip = bf16Flip(p, relErr * p);
                        int v = (b * seq + s) * row + 2 * channels + h * d;
                        for (int i = 0; i < d; i++) flips[(b * seq + t) * channels + h * d + i] += flip * Math.abs(qkv[v + i]);
                    }
                }
            }
        }
        return flips;
    }

    /** {batch, seq, channels, heads}: T = 1, one head, head size 1 and 2, several heads and batches. */
    static final int[][] SHAPES = {{2, 5, 8, 2}, {1, 1, 4, 1}, {2, 1, 6, 3}, {1, 4, 3, 1}, {2, 3, 6, 3},
            {1, 6, 4, 4}, {1, 9, 16, 4}};

    @Test
    void forwardMatchesReference() {
        Random rnd = new Random(11);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int batch = s[0], seq = s[1], channels = s[2], heads = s[3];
            float[] qkv = representable(dtype, uniform(rnd, batch * seq * 3 * channels, -2, 2));
            double[] att = new double[batch * heads * seq * seq];
            double[] expected = reference(dtype, batch, seq, channels, heads, toDouble(qkv), att);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment[] got = forward(arena, dtype, batch, seq, channels, heads, tensor(arena, dtype, qkv));
                MemorySegment attSeg = got[0], out = got[1];
                // Probabilities (f32 for both dtypes) and convex combinations of |v| <= 2 after f32 dot
                // products of length <= 4; a bf16 out is rounded once more.
                String what = "attention " + name(dtype) + " " + Arrays.toString(s);
                assertClose(what + " att", att, read(attSeg), 1e-5, 1e-7);
                double[] flips = probabilityFlips(dtype, batch, seq, channels, heads, toDouble(qkv), att, 1e-5);
                KernelTestSupport.assertClose(what + " out", expected, readTensor(out, dtype),
                        i -> (1e-5 + rounding(dtype)) * Math.abs(expected[i]) + 1e-6 + flips[i]);
            }
        }
    }

    /**
     * {batch, seq, channels, heads} past the kernel's blocks of 42 query rows: T = 1, T one past
     * a block, odd T over three blocks, whole blocks, and T = 301, deeper than the AVX-512 f32 engine's
     * depth block (288 steps, sized for a 48 KiB L1d on every host: the sums over keys are
     * chained); head sizes 20, 9 (not multiples of 8 or 16), 32, 5 and 8; one head and one batch.
     */
    static final int[][] BLOCKED_SHAPES = {{1, 1, 8, 1}, {2, 43, 40, 2}, {1, 97, 9, 1}, {2, 84, 96, 3},
            {1, 130, 10, 2}, {1, 301, 16, 2}};

    /**
     * Forward and backward, f32 and bf16, at every instruction-set level the CPU has (AVX2 6x16,
     * AVX-512 14x32 and vdpbf16ps GEMM kernels), against the double references. Bounds, with u =
     * 2^-24: a score, an f32 dot product of length D scaled once, is off by at most (D + 2) u
     * scale sum|q_i k_i|; a probability then by p * e_row, e_row = 2 max_s (score error) + 8 u
     * (the shift by the row max, exp to a few u, the sum, its inverse and the product); out_t by
     * (e_row + (t + 2) u) sum_s p_s |v_s| (t + 1 products summed). The backward chains four such
     * stages (datt, its mean, the score gradient, the final sum over at most T rows) on those
     * probabilities: 4 (T + D + e/u) u times the magnitude (referenceBackward's sums of absolute
     * values), e the largest e_row. bf16 outputs add one rounding of the value. In bf16 the
     * reference rounds the probabilities and score gradients where they meet v, dout, k or q, as
     * the kernel does; the kernel's rounding of its f32 value agrees except where a rounding
     * boundary lies within that value's error bound, and there differs by one bf16 step (bf16Flip).
     */
    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {1, 2, 3})
    void everyIsaLevelMatchesReferenceOnBlockedShapes(int level) {
        atLevel(level, () -> {
            Random rnd = new Random(20 + level);
            double u = 0x1p-24;
            for (int dtype : DTYPES)
            for (int[] s : BLOCKED_SHAPES) {
                int batch = s[0], seq = s[1], channels = s[2], heads = s[3], d = channels / heads, row = 3 * channels;
                double scale = 1 / Math.sqrt(d);
                float[] qkv = representable(dtype, uniform(rnd, batch * seq * row, -1, 1));
                float[] dout = representable(dtype, uniform(rnd, batch * seq * channels, -1, 1));
                double[] x = toDouble(qkv), att = new double[batch * heads * seq * seq];
                double[] out = reference(dtype, batch, seq, channels, heads, x, att);
                double[] attTol = new double[att.length], outTol = new double[out.length];
                double worstRow = 0;
                for (int b = 0; b < batch; b++) {
                    for (int h = 0; h < heads; h++) {
                        for (int t = 0; t < seq; t++) {
                            int at = ((b * heads + h) * seq + t) * seq, q = (b * seq + t) * row + h * d;
                            double scoreErr = 0;
                            for (int j = 0; j <= t; j++) {
                                int k = (b * seq + j) * row + channels + h * d;
                                double mag = 0;
                                for (int i = 0; i < d; i++) mag += Math.abs(x[q + i] * x[k + i]);
                                scoreErr = Math.max(scoreErr, (d + 2) * u * scale * mag);
                            }
                            double rowErr = 2 * scoreErr + 8 * u;
                            worstRow = Math.max(worstRow, rowErr);
                            for (int j = 0; j <= t; j++) attTol[at + j] = att[at + j] * rowErr;
                            for (int i = 0; i < d; i++) {
                                double err = 0;
                                for (int j = 0; j <= t; j++) {
                                    double p = att[at + j], pErr = dtype == BF16 ? bf16Flip(p, p * rowErr) : p * rowErr;
                                    err += (pErr + (t + 2) * u * p) * Math.abs(x[(b * seq + j) * row + 2 * channels + h * d + i]);
                                }
                                int o = (b * seq + t) * channels + h * d + i;
                                outTol[o] = err + rounding(dtype) * Math.abs(out[o]);
                            }
                        }
                    }
                }
                double stages = 4 * (seq + d + worstRow / u) * u;
                double[][] backward = referenceBackward(dtype, batch, seq, channels, heads, x, toDouble(dout), worstRow, stages);
                double[] dqkv = backward[0], magnitude = backward[1], flips = backward[2];
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment[] got = forwardBackward(arena, dtype, batch, seq, channels, heads, qkv, dout);
                    String what = "attention level " + level + " " + name(dtype) + " " + Arrays.toString(s);
                    KernelTestSupport.assertClose(what + " att", att, read(got[0]), i -> attTol[i]);
                    KernelTestSupport.assertClose(what + " out", out, readTensor(got[1], dtype), i -> outTol[i]);
                    KernelTestSupport.assertClose(what + " dqkv", dqkv, readTensor(got[2], dtype),
                            i -> stages * magnitude[i] + flips[i] + rounding(dtype) * Math.abs(dqkv[i]));
                }
            }
        });
    }

    /**
     * A NaN key makes every row that sees it NaN (probabilities up to the diagonal and out), as
     * the reference's exp and sum do; the rows before it and the other head stay exact.
     */
    @Test
    void nanKeyPoisonsTheRowsThatSeeIt() {
        Random rnd = new Random(14);
        int batch = 1, seq = 50, channels = 8, heads = 2, poisoned = 45;
        for (int dtype : DTYPES) {
            float[] qkv = representable(dtype, uniform(rnd, batch * seq * 3 * channels, -2, 2));
            qkv[poisoned * 3 * channels + channels + 1] = Float.NaN; // key 45, head 0
            double[] att = new double[batch * heads * seq * seq];
            double[] out = reference(dtype, batch, seq, channels, heads, toDouble(qkv), att);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment[] got = forward(arena, dtype, batch, seq, channels, heads, tensor(arena, dtype, qkv));
                float[] gotAtt = read(got[0]), gotOut = readTensor(got[1], dtype);
                for (int t = 0; t < seq; t++) {
                    for (int s = 0; s < seq; s++) {
                        boolean nan = t >= poisoned && s <= t;
                        assertEquals(nan, Double.isNaN(att[t * seq + s]), "reference att[0, 0, " + t + ", " + s + "]");
                        assertEquals(nan, Float.isNaN(gotAtt[t * seq + s]), "att[0, 0, " + t + ", " + s + "]");
                        if (nan) att[t * seq + s] = gotAtt[t * seq + s] = 0;
                    }
                    for (int i = 0; i < channels; i++) {
                        boolean nan = t >= poisoned && i < channels / heads;
                        assertEquals(nan, Float.isNaN(gotOut[t * channels + i]), "out[0, " + t + ", " + i + "]");
                        if (nan) out[t * channels + i] = gotOut[t * channels + i] = 0;
                    }
                }
                assertClose("attention with a NaN key " + name(dtype) + " att", att, gotAtt, 1e-5, 1e-7);
                double[] flips = probabilityFlips(dtype, batch, seq, channels, heads, toDouble(qkv), att, 1e-5);
                KernelTestSupport.assertClose("attention with a NaN key " + name(dtype) + " out", out, gotOut,
                        i -> (1e-5 + rounding(dtype)) * Math.abs(out[i]) + 1e-5 + flips[i]);
            }
        }
    }

    /**
     * dqkv (overwritten, NaN before) from d{@code <dout, out>}/d qkv by central differences. bf16
     * also rounds each probability and score gradient in the products, each term by at most
     * rounding(bf16) relative: the magnitude of the sums scales that.
     */
    @Test
    void backwardMatchesFiniteDifferences() {
        Random rnd = new Random(12);
        for (int dtype : DTYPES)
        for (int[] s : SHAPES) {
            int batch = s[0], seq = s[1], channels = s[2], heads = s[3];
            float[] qkv = representable(dtype, uniform(rnd, batch * seq * 3 * channels, -2, 2));
            float[] dout = representable(dtype, uniform(rnd, batch * seq * channels, -1, 1));
            double[] x = toDouble(qkv), g = toDouble(dout);
            double[] expected = numericGradient(x, y -> dot(g, reference(F32, batch, seq, channels, heads, y, null)));
            double[] magnitude = referenceBackward(F32, batch, seq, channels, heads, x, g, 0, 0)[1];
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment dqkv = forwardBackward(arena, dtype, batch, seq, channels, heads, qkv, dout)[2];
                // Gradients are O(1) sums of at most T f32 products through the softmax (plus one
                // bf16 rounding of each dqkv element).
                KernelTestSupport.assertClose("attention dqkv " + name(dtype) + " " + Arrays.toString(s), expected,
                        readTensor(dqkv, dtype),
                        i -> (1e-4 + rounding(dtype)) * Math.abs(expected[i]) + 1e-5 + rounding(dtype) * magnitude[i]);
            }
        }
    }

    /** The forward on dtype storage (outputs NaN before): {att, out}. */
    static MemorySegment[] forward(Arena arena, int dtype, int batch, int seq, int channels, int heads,
            MemorySegment qkv) {
        MemorySegment att = nans(arena, batch * heads * seq * seq), out = nanTensor(arena, dtype, batch * seq * channels);
        assertOk(LIB.pmoe_attention_forward(dtype, batch, seq, channels, heads, qkv, att, out, NULL),
                "pmoe_attention_forward");
        return new MemorySegment[] {att, out};
    }

    /** Forward then backward on dtype storage (outputs NaN before): {att, out, dqkv}. */
    static MemorySegment[] forwardBackward(Arena arena, int dtype, int batch, int seq, int channels, int heads,
            float[] qkv, float[] dout) {
        MemorySegment qkvSeg = tensor(arena, dtype, qkv), dqkv = nanTensor(arena, dtype, qkv.length);
        MemorySegment[] fwd = forward(arena, dtype, batch, seq, channels, heads, qkvSeg);
        assertOk(LIB.pmoe_attention_backward(dtype, batch, seq, channels, heads, qkvSeg, fwd[0],
                tensor(arena, dtype, dout), dqkv, NULL), "pmoe_attention_backward");
        return new MemorySegment[] {fwd[0], fwd[1], dqkv};
    }

    /**
     * The row math (softmax, its gradient, the rounding of the bf16 operands) runs 8 lanes wide
     * at AVX2 and 16 at AVX-512 with the same bits. With every product one depth block deep at
     * both levels, the two levels' f32 GEMM kernels compute each element by the same chain (a
     * bf16 operand is widened exactly), so the whole kernel must agree bit for bit. A depth
     * block holds 288 steps (AVX-512) or 512 (AVX2) on every host, so T and D at most 64 here
     * stay well inside one. A NaN and an infinite query element exercise the rows' NaN paths.
     */
    @Test
    void theAvx512RowMathGivesTheAvx2Bits() {
        Random rnd = new Random(31);
        for (int[] s : new int[][] {{1, 1, 8, 1}, {2, 43, 40, 2}, {1, 64, 9, 1}, {2, 64, 128, 2}, {1, 17, 36, 4}, {3, 61, 18, 3}}) {
            int batch = s[0], seq = s[1], channels = s[2], heads = s[3];
            float[] qkv = uniform(rnd, batch * seq * 3 * channels, -3, 3), dout = uniform(rnd, batch * seq * channels, -1, 1);
            if (seq > 20) {
                qkv[5 * 3 * channels] = Float.NaN;
                qkv[9 * 3 * channels + 1] = Float.POSITIVE_INFINITY;
            }
            for (int dtype : DTYPES) {
                float[] x = representable(dtype, qkv), g = representable(dtype, dout);
                byte[][] avx2 = new byte[1][];
                atLevel(panamoe_h.PMOE_ISA_AVX2(), () -> {
                    try (Arena arena = Arena.ofConfined()) {
                        avx2[0] = bytes(forwardBackward(arena, dtype, batch, seq, channels, heads, x, g));
                    }
                });
                atLevel(panamoe_h.PMOE_ISA_AVX512(), () -> {
                    try (Arena arena = Arena.ofConfined()) {
                        assertArrayEquals(avx2[0], bytes(forwardBackward(arena, dtype, batch, seq, channels, heads, x, g)),
                                "attention " + name(dtype) + " " + Arrays.toString(s) + ": AVX-512 row math vs AVX2's");
                    }
                });
            }
        }
    }

    @Test
    void emptyBatchReadsNothing() {
        assertOk(LIB.pmoe_attention_forward(F32, 0, 4, 8, 2, NULL, NULL, NULL, NULL), "forward, batch 0");
        assertOk(LIB.pmoe_attention_backward(F32, 0, 4, 8, 2, NULL, NULL, NULL, NULL, NULL), "backward, batch 0");
    }

    @Test
    void deterministicAcrossThreadCounts() {
        Random rnd = new Random(13);
        // Three blocks of query rows, head size 9. With six (batch, head) pairs, 2 and 3 threads
        // take the forward a block at a time where 1 takes whole pairs.
        for (int[] s : new int[][] {{3, 100, 36, 4}, {2, 100, 27, 3}}) {
            int batch = s[0], seq = s[1], channels = s[2], heads = s[3];
            float[] qkv = uniform(rnd, batch * seq * 3 * channels, -2, 2), dout = uniform(rnd, batch * seq * channels, -1, 1);
            for (int dtype : DTYPES) {
                assertDeterministic("attention " + name(dtype) + " " + Arrays.toString(s),
                        arena -> bytes(forwardBackward(arena, dtype, batch, seq, channels, heads, qkv, dout)));
            }
        }
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = floats(arena, new float[2 * 3 * 3 * 6]);
            assertInvalid(LIB.pmoe_attention_forward(F32, 2, 3, 6, 4, buf, buf, buf, NULL), "heads", "4");
            assertInvalid(LIB.pmoe_attention_forward(F32, 2, 3, 6, 0, buf, buf, buf, NULL), "heads", "0");
            assertInvalid(LIB.pmoe_attention_forward(F32, 2, 0, 6, 2, buf, buf, buf, NULL), "seq", "0");
            assertInvalid(LIB.pmoe_attention_backward(F32, -1, 3, 6, 2, buf, buf, buf, buf, NULL), "batch", "-1");
            assertInvalid(LIB.pmoe_attention_forward(F32, 2, 3, 6, 2, buf, NULL, buf, NULL), "att", "NULL");
            assertInvalid(LIB.pmoe_attention_backward(F32, 2, 3, 6, 2, buf, buf, buf, NULL, NULL), "dqkv", "NULL");
            assertInvalid(LIB.pmoe_attention_forward(7, 2, 3, 6, 2, buf, buf, buf, NULL), "dtype", "7");
        }
    }
}
