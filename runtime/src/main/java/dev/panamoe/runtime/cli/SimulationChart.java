package dev.panamoe.runtime.cli;

import dev.panamoe.runtime.report.ChartStyle;
import dev.panamoe.strategy.simulate.PolicyRun;
import dev.panamoe.strategy.simulate.SimulationReport;
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

    static byte[] png(SimulationReport report, String title) {
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
            s.setLineColor(COLORS[i++ % COLORS.length]);
        }
        return ChartStyle.png(chart);
    }
}
