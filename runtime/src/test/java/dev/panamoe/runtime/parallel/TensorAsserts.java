package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The comparison of a parallel run's tensors with one device's, shared by the parallel tests. */
final class TensorAsserts {
    private TensorAsserts() {
    }

    /**
     * Asserts that the largest |expected - actual| is at most tolerance times the largest
     * |expected| (relative to the tensor, not to each element, so near-zero entries do not blow
     * it up); returns that relative difference.
     */
    static double assertClose(String what, float[] expected, float[] actual, double tolerance) {
        assertEquals(expected.length, actual.length, what + ": length");
        double scale = 0;
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            scale = Math.max(scale, Math.abs(expected[i]));
            worst = Math.max(worst, Math.abs((double) expected[i] - actual[i]));
        }
        double rel = worst / Math.max(scale, 1e-30);
        assertTrue(rel <= tolerance, what + ": max |difference| " + worst + " of largest magnitude " + scale
                + " (relative " + rel + ", tolerance " + tolerance + ")");
        return rel;
    }
}
