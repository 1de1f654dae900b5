package dev.panamoe.runtime.report;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SpecialisationTest {

    @Test
    void perfectlySpecialisedExpertsHavePurityOne() {
        // 6 experts, 3 sources: every expert sees one source only (loads differ).
        long[][] counts = {{10, 0, 0}, {0, 7, 0}, {0, 0, 3}, {5, 0, 0}, {0, 9, 0}, {0, 0, 1}};
        assertEquals(1.0, Specialisation.purity(counts));
        assertEquals(16.0 / 35, Specialisation.chancePurity(counts));
    }

    @Test
    void routingThatIgnoresTheSourceScoresChance() {
        long[][] uniform = new long[8][4];
        for (long[] row : uniform)
            java.util.Arrays.fill(row, 25);
        assertEquals(0.25, Specialisation.purity(uniform));
        assertEquals(0.25, Specialisation.chancePurity(uniform));
    }

    @Test
    void purityIsTheLoadWeightedDominantShare() {
        long[][] counts = {{6, 2, 2}, {1, 1, 0}, {0, 0, 0}, {0, 3, 5}};
        // dominant: 6 + 1 + 0 + 5 = 12 of 20 tokens; the empty expert weighs nothing.
        assertEquals(0.6, Specialisation.purity(counts));
        assertEquals(7.0 / 20, Specialisation.chancePurity(counts));
        double[][] p = Specialisation.sourceGivenExpert(counts);
        assertArrayEquals(new double[] {0.6, 0.2, 0.2}, p[0]);
        assertArrayEquals(new double[] {0.5, 0.5, 0.0}, p[1]);
        assertArrayEquals(new double[] {0.0, 0.0, 0.0}, p[2]);
        assertArrayEquals(new double[] {0.0, 0.375, 0.625}, p[3]);
        assertTrue(Double.isNaN(Specialisation.purity(new long[3][2])));
    }

    @Test
    void badShapesFailNamingTheRow() {
        var e = assertThrows(IllegalArgumentException.class, () -> Specialisation.purity(new long[][] {{1, 2}, {3}}));
        assertEquals("counts[1] must have 2 sources, got 1", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Specialisation.purity(new long[][] {{1, -2}}));
        assertEquals("counts[0][1] must be >= 0, got -2", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Specialisation.sourceGivenExpert(new long[0][]));
        assertEquals("counts must be a non-empty [expert][source] matrix", e.getMessage());
    }
}
