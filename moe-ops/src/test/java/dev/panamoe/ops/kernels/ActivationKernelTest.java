package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.KernelTestSupport.BF16;
import static dev.panamoe.ops.kernels.KernelTestSupport.BF16_EPS;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertClose;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertDeterministic;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.bytes;
import static dev.panamoe.ops.kernels.KernelTestSupport.dot;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.gaussian;
import static dev.panamoe.ops.kernels.KernelTestSupport.maxAbs;
import static dev.panamoe.ops.kernels.KernelTestSupport.nanTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.readTensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.representable;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.row;
import static dev.panamoe.ops.kernels.KernelTestSupport.rowwiseNumericGradient;
import static dev.panamoe.ops.kernels.KernelTestSupport.toDouble;
import static dev.panamoe.ops.kernels.KernelTestSupport.toFloats;
import static dev.panamoe.ops.kernels.ReferenceKernels.GELU;
import static dev.panamoe.ops.kernels.ReferenceKernels.SILU;
import static dev.panamoe.ops.kernels.ReferenceKernels.SWIGLU;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** GeLU (tanh), SiLU and SwiGLU forward against {@link ReferenceKernels#activation}, backward against finite differences. */
class ActivationKernelTest {

    static final int[] ACTS = {GELU, SILU, SWIGLU};
    /**
     * {rows, cols}: including an empty expert (0 rows), a single element, a vector-tail width and
     * rows of two full bf16 chunks (256 columns, activation.cpp) plus a tail.
     */
    static final int[][] SHAPES = {{0, 5}, {1, 1}, {3, 17}, {64, 96}, {5, 130}, {3, 600}};
    /** Saturated and overflow-prone inputs (exp(100) overflows f32), spliced into every case. */
    static final float[] EXTREMES = {0, 1e-3f, -1e-3f, 5, -5, 10, -10, 30, -30, 100, -100};

    static String name(int act) {
        return act == GELU ? "gelu" : act == SILU ? "silu" : "swiglu";
    }

    static int inputWidth(int act, int cols) {
        return act == SWIGLU ? 2 * cols : cols;
    }

    static float[] inputs(Random rnd, int act, int rows, int cols) {
        float[] in = gaussian(rnd, rows * inputWidth(act, cols), 3);
        for (int i = 0; i < Math.min(in.length, 4 * EXTREMES.length); i++) {
            if (rnd.nextBoolean()) in[i] = EXTREMES[rnd.nextInt(EXTREMES.length)];
        }
        return in;
    }

    static float[] nativeForward(int act, int rows, int cols, float[] in) {
        return nativeForward(F32, act, rows, cols, in);
    }

    /** The kernel on `dtype` storage; in must be representable in it. Returns the output widened to f32. */
    static float[] nativeForward(int dtype, int act, int rows, int cols, float[] in) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = nanTensor(arena, dtype, rows * cols);
            assertOk(LIB.pmoe_activation_forward(dtype, act, rows, cols, tensor(arena, dtype, in), out, NO_STREAM),
                    "pmoe_activation_forward " + name(act));
            return readTensor(out, dtype);
        }
    }

    static float[] nativeBackward(int act, int rows, int cols, float[] in, float[] gradOut) {
        return nativeBackward(F32, act, rows, cols, in, gradOut);
    }

    static float[] nativeBackward(int dtype, int act, int rows, int cols, float[] in, float[] gradOut) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment gradIn = nanTensor(arena, dtype, in.length);
            assertOk(LIB.pmoe_activation_backward(dtype, act, rows, cols, tensor(arena, dtype, in),
                    tensor(arena, dtype, gradOut), gradIn, NO_STREAM), "pmoe_activation_backward " + name(act));
            return readTensor(gradIn, dtype);
        }
    }

    /**
     * Scale of the f32 evaluation error of output (row, col): tanh/exp/sigmoid each carry a few
     * ulps of their O(1) value, which the GeLU polynomial multiplies by up to ~x^2 (and 1 - tanh^2
     * cancels when saturated), and SwiGLU by |up|. Tolerances take 1e-6 (~17 ulps) of it.
     */
    static double errorScale(int act, int cols, float[] in, int row, int col) {
        int width = inputWidth(act, cols);
        double x = in[row * width + col];
        double scale = 1 + x * x;
        return act == SWIGLU ? scale * (1 + Math.abs(in[row * width + cols + col])) : scale;
    }

    @Test
    void forwardMatchesReference() {
        Random rnd = new Random(71);
        for (int act : ACTS) {
            for (int[] shape : SHAPES) {
                int rows = shape[0], cols = shape[1];
                float[] in = inputs(rnd, act, rows, cols);
                double[] expected = ReferenceKernels.activation(act, rows, cols, toDouble(in));
                assertClose(name(act) + " forward " + rows + "x" + cols, expected, nativeForward(act, rows, cols, in),
                        i -> 1e-5 * Math.abs(expected[i]) + 1e-6 * errorScale(act, cols, in, i / cols, i % cols));
            }
        }
    }

    /** The reference gradient is the central difference of sum(grad_out * f(in)) on the double forward. */
    @Test
    void backwardMatchesFiniteDifferences() {
        Random rnd = new Random(72);
        for (int act : ACTS) {
            for (int[] shape : SHAPES) {
                int rows = shape[0], cols = shape[1], width = inputWidth(act, cols);
                float[] in = inputs(rnd, act, rows, cols);
                float[] gradOut = gaussian(rnd, rows * cols, 1);
                double[] g = toDouble(gradOut);
                double[] expected = rowwiseNumericGradient(toDouble(in), width,
                        (r, x) -> dot(row(g, r, cols), ReferenceKernels.activation(act, 1, cols, x)));
                float[] got = nativeBackward(act, rows, cols, in, gradOut);
                double gradScale = maxAbs(g);
                assertClose(name(act) + " backward " + rows + "x" + cols, expected, got,
                        i -> 1e-5 * Math.abs(expected[i]) + 1e-6 * gradScale * errorScale(act, cols, in, i / width, i % width % cols));
            }
        }
    }

    /**
     * bf16 storage, against the same double references on bf16-exact inputs: the kernel computes
     * in f32 and rounds each output once, so the f32 tolerances above plus one bf16 rounding
     * (BF16_EPS = 2^-8 relative) bound it. Each result must also be exactly the f32 kernel's
     * result on the same inputs rounded to bf16 (the same f32 math, one rounding).
     */
    @Test
    void bf16MatchesReferenceOnRoundedInputs() {
        Random rnd = new Random(74);
        for (int act : ACTS) {
            for (int[] shape : SHAPES) {
                int rows = shape[0], cols = shape[1], width = inputWidth(act, cols);
                float[] in = representable(BF16, inputs(rnd, act, rows, cols));
                float[] gradOut = representable(BF16, gaussian(rnd, rows * cols, 1));
                String what = name(act) + " bf16 " + rows + "x" + cols;
                double[] expected = ReferenceKernels.activation(act, rows, cols, toDouble(in));
                float[] out = nativeForward(BF16, act, rows, cols, in);
                assertClose(what + " forward", expected, out, i -> (1e-5 + BF16_EPS) * Math.abs(expected[i])
                        + 1e-6 * errorScale(act, cols, in, i / cols, i % cols));
                assertArrayEquals(representable(BF16, nativeForward(act, rows, cols, in)), out, what + " forward");
                double[] g = toDouble(gradOut);
                double[] expectedGrad = rowwiseNumericGradient(toDouble(in), width,
                        (r, x) -> dot(row(g, r, cols), ReferenceKernels.activation(act, 1, cols, x)));
                float[] gradIn = nativeBackward(BF16, act, rows, cols, in, gradOut);
                double gradScale = maxAbs(g);
                assertClose(what + " backward", expectedGrad, gradIn, i -> (1e-5 + BF16_EPS) * Math.abs(expectedGrad[i])
                        + 1e-6 * gradScale * errorScale(act, cols, in, i / width, i % width % cols));
                assertArrayEquals(representable(BF16, nativeBackward(act, rows, cols, in, gradOut)), gradIn,
                        what + " backward");
            }
        }
    }

    @Test
    void deterministicAcrossRunsAndThreadCounts() {
        Random rnd = new Random(73);
        int rows = 512, cols = 384;
        for (int act : ACTS) {
            float[] in = inputs(rnd, act, rows, cols);
            float[] gradOut = gaussian(rnd, rows * cols, 1);
            assertDeterministic(name(act) + " forward", arena -> bytes(floats(arena, nativeForward(act, rows, cols, in))));
            assertDeterministic(name(act) + " backward", arena -> bytes(floats(arena, nativeBackward(act, rows, cols, in, gradOut))));
            assertDeterministic(name(act) + " bf16 forward",
                    arena -> bytes(floats(arena, nativeForward(BF16, act, rows, cols, representable(BF16, in)))));
            assertDeterministic(name(act) + " bf16 backward", arena -> bytes(floats(arena,
                    nativeBackward(BF16, act, rows, cols, representable(BF16, in), representable(BF16, gradOut)))));
        }
    }

    /**
     * The AVX-512 spans (activation_avx512.cpp) compute what the baseline's do, bit for bit, on
     * every activation, f32 and bf16, forward and backward, tails, extremes, NaN and infinities:
     * results must not depend on the host's instruction set beyond the GEMMs'.
     */
    @ParameterizedTest(name = "level {0}")
    @ValueSource(ints = {2, 3})
    void everyLevelGivesTheBaselinesBits(int level) {
        Random rnd = new Random(79);
        for (int act : ACTS) {
            for (int[] shape : SHAPES) {
                int rows = shape[0], cols = shape[1];
                float[] in = inputs(rnd, act, rows, cols);
                if (in.length > 3) {
                    in[1] = Float.NaN;
                    in[2] = Float.POSITIVE_INFINITY;
                    in[3] = Float.NEGATIVE_INFINITY;
                }
                float[] gradOut = gaussian(rnd, rows * cols, 1);
                for (int dtype : new int[] {F32, BF16}) {
                    float[] x = representable(dtype, in), g = representable(dtype, gradOut);
                    float[][] baseline = new float[2][];
                    KernelTestSupport.atLevel(panamoe_h.PMOE_ISA_AVX2(), () -> {
                        baseline[0] = nativeForward(dtype, act, rows, cols, x);
                        baseline[1] = nativeBackward(dtype, act, rows, cols, x, g);
                    });
                    KernelTestSupport.atLevel(level, () -> {
                        String what = name(act) + " " + rows + "x" + cols + " dtype=" + dtype + " at level " + level;
                        assertArrayEquals(bits(baseline[0]), bits(nativeForward(dtype, act, rows, cols, x)), what + " forward");
                        assertArrayEquals(bits(baseline[1]), bits(nativeBackward(dtype, act, rows, cols, x, g)),
                                what + " backward");
                    });
                }
            }
        }
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment in = floats(arena, new float[32]), out = floats(arena, new float[32]), grad = floats(arena, new float[32]);
            assertInvalid(LIB.pmoe_activation_forward(F32, 3, 2, 4, in, out, NO_STREAM), "act", "3");
            assertInvalid(LIB.pmoe_activation_backward(F32, -1, 2, 4, in, grad, out, NO_STREAM), "act", "-1");
            assertInvalid(LIB.pmoe_activation_forward(F32, GELU, -2, 4, in, out, NO_STREAM), "rows", "-2");
            assertInvalid(LIB.pmoe_activation_forward(F32, SWIGLU, 2, -4, in, out, NO_STREAM), "cols", "-4");
            assertInvalid(LIB.pmoe_activation_forward(F32, SILU, 2, 4, MemorySegment.NULL, out, NO_STREAM), "in", null);
            assertInvalid(LIB.pmoe_activation_forward(F32, SILU, 2, 4, in, MemorySegment.NULL, NO_STREAM), "out", null);
            assertInvalid(LIB.pmoe_activation_backward(F32, GELU, 2, 4, in, MemorySegment.NULL, out, NO_STREAM), "grad_out", null);
            assertInvalid(LIB.pmoe_activation_backward(F32, GELU, 2, 4, in, grad, MemorySegment.NULL, NO_STREAM), "grad_in", null);
            assertInvalid(LIB.pmoe_activation_backward(F32, SWIGLU, 2, 4, MemorySegment.NULL, grad, out, NO_STREAM), "in", null);
            assertInvalid(LIB.pmoe_activation_forward(2, GELU, 2, 4, in, out, NO_STREAM), "dtype", "2");
            assertInvalid(LIB.pmoe_activation_backward(-1, SILU, 2, 4, in, grad, out, NO_STREAM), "dtype", "-1");
        }
    }
}
