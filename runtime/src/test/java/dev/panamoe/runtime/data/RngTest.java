package dev.panamoe.runtime.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RngTest {

    /** Gamma(a, 1) has mean a and variance a; below and above the shape-1 boost. */
    @Test
    void gammaHasTheRightMeanAndVariance() {
        for (double shape : new double[] {0.3, 1.0, 4.5}) {
            Rng rng = new Rng(Rng.seedFor(1, 2, 3));
            int n = 200_000;
            double sum = 0, sumSq = 0;
            for (int i = 0; i < n; i++) {
                double g = rng.nextGamma(shape);
                assertTrue(g > 0, "gamma draw " + g);
                sum += g;
                sumSq += g * g;
            }
            double mean = sum / n;
            double variance = sumSq / n - mean * mean;
            // stderr of the mean is sqrt(a / n); of the variance roughly a * sqrt((2 + 6/a) / n)
            assertEquals(shape, mean, 5 * Math.sqrt(shape / n), "mean, shape " + shape);
            assertEquals(shape, variance, 5 * shape * Math.sqrt((2 + 6 / shape) / n), "variance, shape " + shape);
        }
    }

    @Test
    void boundedDrawsAreUniform() {
        Rng rng = new Rng(7);
        int bound = 7, n = 70_000;
        int[] counts = new int[bound];
        for (int i = 0; i < n; i++) counts[rng.nextInt(bound)]++;
        for (int c : counts) assertEquals(n / bound, c, 5 * Math.sqrt(n / (double) bound));
        assertEquals(0, new Rng(1).nextLong(1));
    }

    @Test
    void seedsOfNeighbouringItemsDiffer() {
        assertNotEquals(Rng.seedFor(1, 1, 0), Rng.seedFor(1, 1, 1));
        assertNotEquals(Rng.seedFor(1, 1, 0), Rng.seedFor(1, 2, 0));
        assertNotEquals(Rng.seedFor(1, 1, 0), Rng.seedFor(2, 1, 0));
        assertEquals(Rng.seedFor(5, 6, 7), Rng.seedFor(5, 6, 7));
    }
}
