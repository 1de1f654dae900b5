package dev.panamoe.runtime.report;

import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.Marker;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** The report's charts, drawn with XChart and encoded as PNG bytes. */
final class Charts {
    static {
        ChartStyle.headless();
    }

    static final int WIDTH = 960;
    static final int HEIGHT = 480;

    /** Most columns of an expert-load heat map; longer runs are summed into this many step bins. */
    static final int MAX_LOAD_COLUMNS = 50;

    /** Sequential colour scale (viridis, low to high): readable in grey and by colour-blind readers. */
    private static final Color[] SCALE = {new Color(0x440154), new Color(0x3b528b), new Color(0x21918c),
            new Color(0x5ec962), new Color(0xfde725)};

    private Charts() {
    }

    /** Training loss per step, validation loss where evaluated, and the horizontal reference lines. */
    static byte[] loss(List<StepMetrics> steps, double unigramLoss, double lossFloor) {
        XYChart chart = lineChart("Loss", "loss (nats per token)");
        double[] x = new double[steps.size()];
        double[] train = new double[steps.size()];
        List<Double> valX = new ArrayList<>();
        List<Double> valY = new ArrayList<>();
        for (int i = 0; i < steps.size(); i++) {
            StepMetrics m = steps.get(i);
            x[i] = m.step();
            train[i] = m.loss();
            if (m.evaluated()) {
                valX.add((double) m.step());
                valY.add(m.valLoss());
            }
        }
        look(chart.addSeries("training", x, train), new Color(0x1f77b4), SeriesMarkers.NONE, SeriesLines.SOLID);
        if (!valX.isEmpty())
            look(chart.addSeries("validation", valX, valY), new Color(0xd62728), SeriesMarkers.CIRCLE, SeriesLines.SOLID);
        horizontalLine(chart, "unigram loss", unigramLoss, x, new Color(0x7f7f7f));
        horizontalLine(chart, "loss floor", lossFloor, x, new Color(0x2ca02c));
        return ChartStyle.png(chart);
    }

    /** Training tokens per second at each step. */
    static byte[] throughput(List<StepMetrics> steps) {
        XYChart chart = lineChart("Throughput", "tokens / s");
        chart.getStyler().setLegendVisible(false);
        chart.getStyler().setYAxisMin(0.0); // from zero, so that noise does not look like a collapse
        double[] x = new double[steps.size()];
        double[] y = new double[steps.size()];
        for (int i = 0; i < steps.size(); i++) {
            x[i] = steps.get(i).step();
            y[i] = steps.get(i).tokensPerSecond();
        }
        look(chart.addSeries("tokens/s", x, y), new Color(0x1f77b4), SeriesMarkers.NONE, SeriesLines.SOLID);
        return ChartStyle.png(chart);
    }

    /**
     * One MoE layer's load: rows are experts, columns step bins, cells each expert's share of the
     * layer's token-to-expert assignments in that bin (1/experts everywhere when perfectly balanced).
     */
    static byte[] expertLoad(String title, List<StepMetrics> steps, int layer) {
        int experts = steps.getFirst().expertCounts()[layer].length;
        int bins = Math.min(MAX_LOAD_COLUMNS, steps.size());
        List<Long> binEnds = new ArrayList<>(bins);
        List<Number[]> cells = new ArrayList<>(bins * experts);
        double maxShare = 0;
        for (int b = 0; b < bins; b++) {
            int from = (int) ((long) steps.size() * b / bins);
            int to = (int) ((long) steps.size() * (b + 1) / bins);
            long[] perExpert = new long[experts];
            long total = 0;
            for (int i = from; i < to; i++)
                for (int e = 0; e < experts; e++) {
                    perExpert[e] += steps.get(i).expertCounts()[layer][e];
                    total += steps.get(i).expertCounts()[layer][e];
                }
            binEnds.add(steps.get(to - 1).step());
            for (int e = 0; e < experts; e++) {
                double share = total == 0 ? 0 : (double) perExpert[e] / total;
                maxShare = Math.max(maxShare, share);
                cells.add(new Number[] {b, e, share});
            }
        }
        // Scale top rounded up to a multiple of 0.05: the legend prints it unformatted.
        double top = maxShare > 0 ? Math.ceil(maxShare * 20) / 20 : 1;
        HeatMapChart chart = heatMap(title, "step (end of bin)", "expert", 0, top);
        chart.getStyler().setXAxisLabelRotation(90);
        chart.addSeries("share of tokens", binEnds, range(experts), cells);
        return ChartStyle.png(chart);
    }

    /** P(source | expert) of one MoE layer: rows experts, columns sources. */
    static byte[] specialisation(String title, double[][] sourceGivenExpert) {
        int experts = sourceGivenExpert.length;
        int sources = sourceGivenExpert[0].length;
        List<Number[]> cells = new ArrayList<>(experts * sources);
        for (int e = 0; e < experts; e++)
            for (int s = 0; s < sources; s++)
                cells.add(new Number[] {s, e, sourceGivenExpert[e][s]});
        HeatMapChart chart = heatMap(title, "source", "expert", 0, 1);
        // Values printed in the cells only while they stay legible.
        chart.getStyler().setShowValue(experts * sources <= 128).setHeatMapValueDecimalPattern("0.00")
                .setValueFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11)).setValueFontColor(Color.WHITE);
        chart.addSeries("P(source | expert)", range(sources), range(experts), cells);
        return ChartStyle.png(chart);
    }

    private static XYChart lineChart(String title, String yTitle) {
        XYChart chart = new XYChart(WIDTH, HEIGHT, Styler.ChartTheme.XChart);
        chart.setTitle(title);
        chart.setXAxisTitle("step");
        chart.setYAxisTitle(yTitle);
        ChartStyle.apply(chart.getStyler());
        chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        return chart;
    }

    private static HeatMapChart heatMap(String title, String xTitle, String yTitle, double min, double max) {
        // Unlike the other charts, XChart 3.8.8's HeatMapChart(width, height) applies no theme and
        // fails to paint (null fonts and formats); the theme must be named.
        HeatMapChart chart = new HeatMapChart(WIDTH, HEIGHT, Styler.ChartTheme.XChart);
        chart.setTitle(title);
        chart.setXAxisTitle(xTitle);
        chart.setYAxisTitle(yTitle);
        ChartStyle.apply(chart.getStyler());
        chart.getStyler().setRangeColors(SCALE).setMin(min).setMax(max).setDrawBorder(false);
        return chart;
    }

    private static void horizontalLine(XYChart chart, String name, double y, double[] steps, Color color) {
        if (Double.isNaN(y))
            return;
        look(chart.addSeries(String.format(Locale.ROOT, "%s %.3f", name, y),
                new double[] {steps[0], steps[steps.length - 1]}, new double[] {y, y}), color, SeriesMarkers.NONE, SeriesLines.DASH_DASH);
    }

    private static void look(XYSeries series, Color color, Marker marker, BasicStroke line) {
        series.setLineColor(color);
        series.setMarkerColor(color);
        series.setMarker(marker);
        series.setLineStyle(line);
    }

    private static List<Integer> range(int n) {
        List<Integer> values = new ArrayList<>(n);
        for (int i = 0; i < n; i++)
            values.add(i);
        return values;
    }
}
