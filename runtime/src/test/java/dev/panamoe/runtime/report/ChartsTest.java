package dev.panamoe.runtime.report;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Color;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;

/** What the charts show, checked on their models (series, scales, labels) rather than pixels. */
class ChartsTest {

    @Test
    void loadMapsLabelTheirColourBarAndMarkTheBalancedShare() {
        ReportData run = TrainingReportTest.sampleRun(120);
        Charts.HeatMap map = Charts.expertLoad("Expert load, MoE layer 0", run.steps(), 0);
        ColourBar bar = map.bar();
        assertEquals("share of tokens", bar.title());
        assertEquals(List.of(new ColourBar.Mark(1.0 / 8, "balanced 1/8")), bar.marks());
        assertEquals(0, bar.min());
        // the hottest expert takes about 250 of 1100 slots in a bin: the scale covers it, not 1
        assertTrue(bar.max() >= 0.2 && bar.max() <= 0.3, "max " + bar.max());
        // diverging at the balanced share: pale there, and cold and hot experts in different hues
        Color balanced = bar.colour(1.0 / 8);
        assertEquals(new Color(0xf7f7f7), balanced);
        Color cold = bar.colour(0.02);
        Color hot = bar.colour(0.24);
        assertTrue(cold.getBlue() > cold.getRed() && hot.getRed() > hot.getBlue(), cold + " " + hot);
        assertTrue(map.png().length > 1000);
    }

    @Test
    void specialisationScaleEndsNearItsLargestValue() {
        double[][] p = {{0.45, 0.55, 0, 0}, {0.25, 0.25, 0.25, 0.25}};
        Charts.HeatMap map = Charts.specialisation("P(source | expert), MoE layer 0", p);
        ColourBar bar = map.bar();
        assertEquals("P(source | expert)", bar.title());
        assertEquals(0.6, bar.max(), 1e-12, "largest value 0.55 rounded up to a tenth, not 1");
        assertEquals(List.of(new ColourBar.Mark(0.25, "uniform 1/4")), bar.marks());
        assertNotEquals(bar.colour(0.25), bar.colour(0.55), "the values in the map get distinct colours");
        assertEquals(Color.BLACK, map.chart().getStyler().getValueFontColor());
    }

    @Test
    void colourBarInterpolatesBetweenStopsAndTicksRoundValues() {
        ColourBar bar = new ColourBar("x", new double[] {0, 0.5, 2}, new Color[] {Color.BLACK, Color.WHITE,
            new Color(0, 0, 200)}, List.of());
        assertEquals(new Color(128, 128, 128), bar.colour(0.25));
        assertEquals(new Color(128, 128, 228), bar.colour(1.25));
        assertEquals(Color.BLACK, bar.colour(-1));
        assertEquals(new Color(0, 0, 200), bar.colour(3));
        assertEquals(List.of(0.0, 0.5, 1.0, 1.5, 2.0), bar.ticks());
    }

    @Test
    void throughputDrawsEveryStepLightlyAndItsRunningMedian() {
        ReportData run = TrainingReportTest.sampleRun(200);
        XYChart chart = Charts.throughput(run.steps());
        assertEquals(List.of("every step", "median of 11 steps"), List.copyOf(chart.getSeriesMap().keySet()));
        XYSeries raw = chart.getSeriesMap().get("every step");
        XYSeries median = chart.getSeriesMap().get("median of 11 steps");
        assertTrue(raw.getLineStyle().getLineWidth() < median.getLineStyle().getLineWidth());
        double[] y = raw.getYData();
        assertArrayEquals(Charts.runningMedian(y, 11), median.getYData());
        assertEquals(1, Charts.medianWindow(10));
        assertEquals(51, Charts.medianWindow(100_000));
    }

    @Test
    void runningMedianIgnoresASpike() {
        double[] y = {10, 10, 1000, 10, 10, 12, 0, 12};
        assertArrayEquals(new double[] {10, 10, 10, 10, 10, 10, 12, 6}, Charts.runningMedian(y, 3));
    }

    @Test
    void pluralIsSingularForOne() {
        assertEquals("1 step", Plural.of(1, "step"));
        assertEquals("0 steps", Plural.of(0, "step"));
        assertEquals("2 micro-batches", Plural.of(2, "micro-batch"));
        assertEquals("1 micro-batch", Plural.of(1, "micro-batch"));
    }
}
