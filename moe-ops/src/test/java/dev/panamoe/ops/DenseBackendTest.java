package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.NativeCallException;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The dense operators of {@link Backend} as typed calls: the kernels themselves are tested
 * through the raw bindings (ops.dense); here, that each wrapper hands the kernel the right sizes
 * (small hand-computed results, both [B, T, C] layouts) and that every malformed call is
 * rejected in Java with a message naming the argument and its value.
 */
class DenseBackendTest {
    private static final Backend CPU = CpuBackend.get();

    @Test
    void embeddingReadsSizesFromTheTensorsInEitherLayout() {
        try (TensorScope s = TensorScope.confined(CPU)) {
            Tensor ids = s.ofInts("ids", new int[] {2, 0, 1, 2}, 2, 2);
            Tensor wte = s.ofFloats("wte", new float[] {0, 0, 10, 10, 20, 20}, 3, 2);
            Tensor wpe = s.ofFloats("wpe", new float[] {1, 2, 3, 4, 5, 6}, 3, 2);
            float[] expected = {21, 22, 3, 4, 11, 12, 23, 24};
            for (Tensor out : List.of(s.allocate("out", DType.F32, 2, 2, 2), s.allocate("out", DType.F32, 4, 2))) {
                CPU.embeddingForward(ids, wte, wpe, out);
                assertArrayEquals(expected, out.toFloatArray());
            }
            Tensor gradWte = s.allocate("gradWte", DType.F32, 3, 2);
            Tensor gradWpe = s.allocate("gradWpe", DType.F32, 3, 2);
            Tensor ones = s.ofFloats("ones", new float[] {1, 1, 1, 1, 1, 1, 1, 1}, 4, 2);
            CPU.embeddingBackward(ids, ones, gradWte, gradWpe);
            CPU.embeddingBackward(ids, ones, gradWte, gradWpe);
            assertArrayEquals(new float[] {2, 2, 2, 2, 4, 4}, gradWte.toFloatArray(), "accumulated per id");
            assertArrayEquals(new float[] {4, 4, 4, 4, 0, 0}, gradWpe.toFloatArray(), "accumulated per position");
        }
    }

    @Test
    void rowOperatorsSeeTheLastDimensionAsColumns() {
        try (TensorScope s = TensorScope.confined(CPU)) {
            Tensor x = s.ofFloats("x", new float[] {1, 3, 2, 6}, 1, 2, 2); // [B=1, T=2, C=2]
            Tensor w = s.ofFloats("w", new float[] {1, 2}, 2);
            Tensor b = s.ofFloats("b", new float[] {0.5f, 0}, 2);
            Tensor out = s.allocate("out", DType.F32, 2, 2);
            Tensor mean = s.allocate("mean", DType.F32, 2);
            Tensor rstd = s.allocate("rstd", DType.F32, 2);
            CPU.layerNormForward(x, w, b, 1e-5f, out, mean, rstd);
            assertArrayEquals(new float[] {2, 4}, mean.toFloatArray());
            float[] y = out.toFloatArray();
            assertEquals(-0.5f, y[0], 1e-4f); // (1 - 2) / 1 * 1 + 0.5
            assertEquals(2f, y[1], 1e-4f); // (3 - 2) / 1 * 2
            CPU.rmsNormForward(x, w, 1e-5f, out, rstd);
            assertEquals((float) (1 / Math.sqrt(5)), rstd.getFloat(0), 1e-6f);
            CPU.biasAdd(b, x);
            assertArrayEquals(new float[] {1.5f, 3, 2.5f, 6}, x.toFloatArray());
            Tensor gradBias = s.allocate("gradBias", DType.F32, 2);
            CPU.biasBackward(x, gradBias);
            assertArrayEquals(new float[] {4, 9}, gradBias.toFloatArray());
        }
    }

    @Test
    void elementwiseLossOptimizerAndNorm() {
        try (TensorScope s = TensorScope.confined(CPU)) {
            Tensor a = s.ofFloats("a", new float[] {1, 2, 3, 4}, 2, 2);
            Tensor b = s.ofFloats("b", new float[] {10, 20, 30, 40}, 4);
            CPU.add(a, b, a);
            assertArrayEquals(new float[] {11, 22, 33, 44}, a.toFloatArray());
            CPU.accumulate(b, a);
            CPU.scale(a, 0.5f);
            assertArrayEquals(new float[] {10.5f, 21, 31.5f, 42}, a.toFloatArray());
            assertEquals(10 * 10 + 20 * 20 + 30 * 30 + 40 * 40, CPU.sumSquares(b));

            Tensor logits = s.allocate("logits", DType.F32, 3, 4); // uniform rows: loss ln 4 each
            Tensor targets = s.ofInts("targets", new int[] {1, -1, 3}, 3);
            Tensor losses = s.allocate("losses", DType.F32, 3);
            assertEquals((float) Math.log(4), CPU.crossEntropyForward(logits, targets, losses), 1e-6f);
            assertEquals(0f, losses.getFloat(1), "ignored row");
            CPU.crossEntropyBackward(logits, targets, 2f, logits); // in place
            assertArrayEquals(new float[] {0.5f, -1.5f, 0.5f, 0.5f, 0, 0, 0, 0, 0.5f, 0.5f, 0.5f, -1.5f},
                    logits.toFloatArray(), 1e-6f);

            Tensor p = s.ofFloats("p", new float[] {1, -1}, 2);
            Tensor g = s.ofFloats("g", new float[] {3, -5}, 2);
            Tensor m = s.allocate("m", DType.F32, 2);
            Tensor v = s.allocate("v", DType.F32, 2);
            CPU.adamwStep(p, g, 1f, m, v, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 1);
            // first step, bias-corrected: m_hat / sqrt(v_hat) = sign(g)
            assertArrayEquals(new float[] {0.9f, -0.9f}, p.toFloatArray(), 1e-6f);
            // the same gradient again moves each master by another lr; the bf16 working copy (any
            // shape) holds them rounded: 0.8 -> 0.80078125, -0.8 -> -0.80078125
            Tensor working = s.allocate("working", DType.BF16, 1, 2);
            CPU.adamwStep(p, g, 1f, m, v, working, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 2);
            assertArrayEquals(new float[] {0.8f, -0.8f}, p.toFloatArray(), 1e-6f);
            assertArrayEquals(new float[] {0.80078125f, -0.80078125f}, working.toFloatArray());
        }
    }

    @Test
    void attentionReadsBatchAndSeqFromAtt() {
        try (TensorScope s = TensorScope.confined(CPU)) {
            int batch = 2, seq = 3, c = 4, heads = 2;
            Tensor qkv = s.allocate("qkv", DType.F32, batch * seq, 3 * c);
            float[] values = new float[batch * seq * 3 * c];
            for (int i = 0; i < values.length; i++) {
                values[i] = (i % 7) * 0.25f - 0.5f;
            }
            qkv.copyFrom(values);
            Tensor att = s.allocate("att", DType.F32, batch, heads, seq, seq);
            Tensor out = s.allocate("out", DType.F32, batch, seq, c);
            CPU.attentionForward(heads, qkv, att, out);
            float[] p = att.toFloatArray();
            for (int row = 0; row < batch * heads * seq; row++) {
                int t = row % seq;
                float sum = 0;
                for (int j = 0; j < seq; j++) {
                    sum += p[row * seq + j];
                    if (j > t) {
                        assertEquals(0f, p[row * seq + j], "causal");
                    }
                }
                assertEquals(1f, sum, 1e-6f, "softmax row " + row);
            }
            // the first token attends only to itself: out = its v
            for (int d = 0; d < c; d++) {
                assertEquals(values[2 * c + d], out.getFloat(d), 1e-6f);
            }
            Tensor gradQkv = s.allocate("gradQkv", DType.F32, batch, seq, 3 * c);
            CPU.attentionBackward(heads, qkv, att, out, gradQkv);
            assertTrue(CPU.sumSquares(gradQkv) > 0);
        }
    }

    /** One malformed call, the exception it must raise and a fragment its message must contain. */
    private record Bad(String fragment, Class<? extends RuntimeException> type, Executable call) {
    }

    @Test
    void malformedCallsNameTheArgumentInJava() {
        try (TensorScope s = TensorScope.confined(CPU)) {
            Tensor ids = s.ofInts("ids", new int[] {0, 1, 2, 3, 1, 0}, 2, 3);
            Tensor wte = s.allocate("wte", DType.F32, 5, 4);
            Tensor wpe = s.allocate("wpe", DType.F32, 3, 4);
            Tensor shortWpe = s.allocate("shortWpe", DType.F32, 2, 4);
            Tensor act = s.allocate("act", DType.F32, 6, 4);
            Tensor w = s.allocate("w", DType.F32, 4);
            Tensor stats = s.allocate("stats", DType.F32, 6);
            Tensor qkv = s.allocate("qkv", DType.F32, 6, 12);
            Tensor att = s.allocate("att", DType.F32, 2, 2, 3, 3);
            Tensor logits = s.allocate("logits", DType.F32, 6, 5);
            Tensor targets = s.ofInts("targets", new int[] {0, 1, 2, 3, 4, 9}, 6);
            Tensor ints = s.allocate("ints", DType.I32, 6, 4);
            Tensor five = s.allocate("five", DType.F32, 5);
            Tensor closed;
            try (TensorScope gone = TensorScope.confined(CPU)) {
                closed = gone.allocate("closed", DType.F32, 6, 4);
            }
            List<Bad> cases = List.of(
                    new Bad("wpe: expected shape [*, 4]", IllegalArgumentException.class,
                            () -> CPU.embeddingForward(ids, wte, s.allocate("wpe", DType.F32, 3, 5), act)),
                    new Bad("ids: sequence length 3 exceeds the 2 positions of wpe", IllegalArgumentException.class,
                            () -> CPU.embeddingForward(ids, wte, shortWpe, act)),
                    new Bad("out: expected shape [2, 3, 4] or [6, 4], got [3, 8]", IllegalArgumentException.class,
                            () -> CPU.embeddingForward(ids, wte, wpe, s.allocate("o", DType.F32, 3, 8))),
                    new Bad("ids: expected dtype i32", IllegalArgumentException.class,
                            () -> CPU.embeddingForward(act, wte, wpe, act)),
                    new Bad("ids[3] = 7", NativeCallException.class,
                            () -> CPU.embeddingBackward(s.ofInts("bad", new int[] {0, 1, 2, 7, 0, 0}, 2, 3), act, wte,
                                    wpe)),
                    new Bad("gradWte: must not be null", IllegalArgumentException.class,
                            () -> CPU.embeddingBackward(ids, act, null, wpe)),
                    new Bad("eps: must be finite and > 0, got 0.0", IllegalArgumentException.class,
                            () -> CPU.layerNormForward(act, w, w, 0f, act, stats, stats)),
                    new Bad("bias: expected shape [4], got [5]", IllegalArgumentException.class,
                            () -> CPU.layerNormForward(act, w, five, 1e-5f, act, stats, stats)),
                    new Bad("mean: expected 6 elements, got shape [5]", IllegalArgumentException.class,
                            () -> CPU.layerNormForward(act, w, w, 1e-5f, act, five, stats)),
                    new Bad("gradX: expected 6 rows of 4 columns", IllegalArgumentException.class,
                            () -> CPU.layerNormBackward(act, w, stats, stats, act, qkv, w, w)),
                    new Bad("rstd: expected 6 elements", IllegalArgumentException.class,
                            () -> CPU.rmsNormForward(act, w, 1e-5f, act, five)),
                    new Bad("gradWeight: expected shape [4]", IllegalArgumentException.class,
                            () -> CPU.rmsNormBackward(act, w, stats, act, act, five)),
                    new Bad("x: expected rank >= 2", IllegalArgumentException.class, () -> CPU.biasAdd(w, five)),
                    new Bad("gradBias: expected shape [4], got [5]", IllegalArgumentException.class,
                            () -> CPU.biasBackward(act, five)),
                    new Bad("out: expected 24 elements like 'act' (a), got shape [5]", IllegalArgumentException.class,
                            () -> CPU.add(act, act, five)),
                    new Bad("y: expected 24 elements", IllegalArgumentException.class, () -> CPU.accumulate(act, qkv)),
                    new Bad("x: expected dtype f32 or bf16, got i32", IllegalArgumentException.class,
                            () -> CPU.scale(ints, 2f)),
                    new Bad("x: tensor 'closed'", IllegalStateException.class, () -> CPU.sumSquares(closed)),
                    new Bad("heads: 3 must divide the channels C = 4", IllegalArgumentException.class,
                            () -> CPU.attentionForward(3, qkv, s.allocate("att3", DType.F32, 2, 3, 3, 3), act)),
                    new Bad("att: expected shape [*, 4, *, *]", IllegalArgumentException.class,
                            () -> CPU.attentionForward(4, qkv, att, act)),
                    new Bad("heads: must be >= 1, got 0", IllegalArgumentException.class,
                            () -> CPU.attentionForward(0, qkv, att, act)),
                    new Bad("qkv: expected shape [2, 3, 12] or [6, 12], got [6, 4]", IllegalArgumentException.class,
                            () -> CPU.attentionForward(2, act, att, act)),
                    new Bad("gradQkv: expected shape [2, 3, 12] or [6, 12], got [6, 4]", IllegalArgumentException.class,
                            () -> CPU.attentionBackward(2, qkv, att, act, act)),
                    new Bad("targets: expected shape [6], got [5]", IllegalArgumentException.class,
                            () -> CPU.crossEntropyForward(logits, s.allocate("t", DType.I32, 5), stats)),
                    new Bad("targets[5] = 9", NativeCallException.class,
                            () -> CPU.crossEntropyForward(logits, targets, stats)),
                    new Bad("gradLogits: expected shape [6, 5], got [6, 4]", IllegalArgumentException.class,
                            () -> CPU.crossEntropyBackward(logits, targets, 1f, act)),
                    new Bad("gradScale: must be finite, got Infinity", IllegalArgumentException.class,
                            () -> CPU.crossEntropyBackward(logits, targets, Float.POSITIVE_INFINITY, logits)),
                    new Bad("v: expected 4 elements like 'w' (params), got shape [5]", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, five, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 1)),
                    new Bad("gradScale: must be finite and >= 0, got -1.0", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, -1f, w, w, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 1)),
                    new Bad("beta1: must be in [0, 1), got 1.0", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, 0.1f, 1f, 0.99f, 1e-8f, 0f, 1)),
                    new Bad("lr: must be finite and >= 0, got -0.1", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, -0.1f, 0.9f, 0.99f, 1e-8f, 0f, 1)),
                    new Bad("weightDecay: must be finite and >= 0, got NaN", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, 0.1f, 0.9f, 0.99f, 1e-8f, Float.NaN, 1)),
                    new Bad("step: must be >= 1 (1 on the first update), got 0", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 0)),
                    new Bad("working: expected 4 elements like params, got shape [5]", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, five, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 1)),
                    new Bad("working: must not overlap 'w'", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, five.slice(0, 4), 1f, five.slice(0, 4), five.slice(0, 4), w, 0.1f, 0.9f,
                                    0.99f, 1e-8f, 0f, 1)),
                    new Bad("working: expected dtype f32 or bf16", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, s.allocate("i", DType.I32, 4), 0.1f, 0.9f, 0.99f, 1e-8f,
                                    0f, 1)),
                    new Bad("working: must not be null", IllegalArgumentException.class,
                            () -> CPU.adamwStep(w, w, 1f, w, w, null, 0.1f, 0.9f, 0.99f, 1e-8f, 0f, 1)));
            for (Bad bad : cases) {
                RuntimeException e = assertThrows(bad.type(), bad.call(), bad.fragment());
                assertTrue(e.getMessage().contains(bad.fragment()),
                        () -> "message '" + e.getMessage() + "' lacks '" + bad.fragment() + "'");
            }
        }
    }
}
