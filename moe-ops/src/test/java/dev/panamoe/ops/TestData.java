package dev.panamoe.ops;

import java.util.SplittableRandom;

/** Random inputs and conversions shared by the layer tests. */
final class TestData {
    private TestData() {
    }

    /** x [tokens, hidden] uniform in [-1, 1), except column 0 in [1, 2): a positive feature lets a test steer the router through W_gate[0, e]. */
    static float[][] input(int tokens, int hidden, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[][] x = new float[tokens][hidden];
        for (float[] row : x) {
            for (int c = 0; c < hidden; c++) {
                row[c] = (float) (c == 0 ? rng.nextDouble(1, 2) : rng.nextDouble(-1, 1));
            }
        }
        return x;
    }

    static float[] flat(float[][] m) {
        int cols = m[0].length;
        float[] f = new float[m.length * cols];
        for (int r = 0; r < m.length; r++) {
            System.arraycopy(m[r], 0, f, r * cols, cols);
        }
        return f;
    }

    static double[][] toDouble(float[][] m) {
        double[][] d = new double[m.length][];
        for (int r = 0; r < m.length; r++) {
            d[r] = ReferenceMoE.toDouble(m[r]);
        }
        return d;
    }

    static Tensor tensor(TensorScope scope, String name, float[][] m) {
        return scope.ofFloats(name, flat(m), m.length, m[0].length);
    }

    /** m as a tensor of dtype (bf16 rounds to nearest even). */
    static Tensor tensor(TensorScope scope, String name, float[][] m, DType dtype) {
        Tensor t = scope.allocate(name, dtype, m.length, m[0].length);
        t.copyFrom(flat(m));
        return t;
    }

    /** Largest |a - b| over all elements of a [rows * cols] tensor and b [rows][cols]. */
    static double maxAbsDiff(float[] a, double[][] b) {
        double d = 0;
        int cols = b[0].length;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i / cols][i % cols]));
        }
        return d;
    }

    static double maxAbs(double[][] m) {
        double s = 0;
        for (double[] row : m) {
            for (double v : row) {
                s = Math.max(s, Math.abs(v));
            }
        }
        return s;
    }

    static int[] identity(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        return p;
    }
}
