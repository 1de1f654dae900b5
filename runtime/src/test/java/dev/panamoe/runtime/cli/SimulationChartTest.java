package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.BasicStroke;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SimulationChartTest {

    /** Lines of policies that agree for a while stay apart: each its own dash, earlier ones wider beneath. */
    @Test
    void everyPolicyLineHasItsOwnDashAndLinesBeneathAreWider() {
        int policies = 5;
        Set<String> dashes = new HashSet<>();
        float previousWidth = Float.MAX_VALUE;
        for (int i = 0; i < policies; i++) {
            BasicStroke s = SimulationChart.stroke(i, policies);
            float[] dash = s.getDashArray();
            // dashes are scaled with the width, so compare their shape
            float[] shape = dash == null ? null : dash.clone();
            if (shape != null) {
                for (int k = 0; k < shape.length; k++) {
                    shape[k] /= dash[0];
                }
            }
            dashes.add(Arrays.toString(shape));
            assertTrue(s.getLineWidth() < previousWidth, "line " + i + " is narrower than the one drawn before it");
            previousWidth = s.getLineWidth();
        }
        assertEquals(policies, dashes.size(), "distinct dash patterns: " + dashes);
        assertEquals(1.5f, SimulationChart.stroke(policies - 1, policies).getLineWidth());
    }
}
