package dev.panamoe.runtime.cli;

import dev.panamoe.runtime.report.ChartStyle;
import dev.panamoe.strategy.simulate.PolicyRun;
import dev.panamoe.strategy.simulate.SimulationReport;
import java.awt.BasicStroke;
import java.awt.Color;
import java.util.Locale;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.XYStyler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The simulator's chart, like SmartMoE's dyn.X figure: predicted time of each iteration, one
 * line per policy. Drawn here rather than in strategy so that strategy stays free of AWT and XChart.
 */
final class SimulationChart {
    static {
        ChartStyle.headless();
    }
    /** Colour-blind-safe (Okabe-Ito), in policy order. */
    private static final Color[] COLORS = {new Color(0x000000), new Color(0xE69F00), new Color(0x56B4E9),
            new Color(0x009E73), new Color(0xD55E00), new Color(0x0072B2), new Color(0xCC79A7), new Color(0xF0E442)};

    private SimulationChart() {
    }

    static XYChart chart(SimulationReport report, String title) {
        XYChart chart = new XYChart(960, 480, Styler.ChartTheme.XChart);
        chart.setTitle(title);
        chart.setXAxisTitle("iteration");
        chart.setYAxisTitle("predicted iteration time (ms)");
        XYStyler styler = chart.getStyler();
        ChartStyle.apply(styler);
        styler.setLegendPosition(Styler.LegendPosition.OutsideE);
        styler.setYAxisMin(0.0);
        int i = 0;
        for (PolicyRun run : report.runs()) {
            double[] ms = new double[run.iterationSeconds().length];
            double[] x = new double[ms.length];
            for (int it = 0; it < ms.length; it++) {
                x[it] = it;
                ms[it] = run.iterationSeconds()[it] * 1e3;
            }
            XYSeries s = chart.addSeries(String.format(Locale.ROOT, "%s (%.2f ms)", run.policy(),
                    run.meanIterationSeconds() * 1e3), x, ms);
            s.setMarker(SeriesMarkers.NONE);
            s.setLineColor(COLORS[i % COLORS.length]);
            s.setLineStyle(stroke(i, report.runs().size()));
            i++;
        }
        return chart;
    }

    static byte[] png(SimulationReport report, String title) {
        return ChartStyle.png(chart(report, title));
    }

    /** Dash patterns in policy order: solid, dashed, dotted, dash-dot, long dashes. */
    private static final float[][] DASHES = {null, {9f, 5f}, {2f, 4f}, {9f, 4f, 2f, 4f}, {16f, 6f}};

    /**
     * Policies often agree for stretches (greedy:100 is static until its first move): each policy
     * has its own dash pattern, and lines drawn earlier are wider, so a line drawn over another
     * leaves the one beneath visible along both edges.
     */
    static BasicStroke stroke(int index, int count) {
        float width = 1.5f + (count - 1 - index);
        float[] dash = DASHES[index % DASHES.length];
        return dash == null ? new BasicStroke(width, BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND)
                : new BasicStroke(width, BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND, 10f, scaled(dash, width), 0f);
    }

    /** Dashes lengthen with the line, so that a wide dotted line still reads as dotted. */
    private static float[] scaled(float[] dash, float width) {
        float[] out = dash.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] *= Math.max(1f, width / 2f);
        }
        return out;
    }
}
