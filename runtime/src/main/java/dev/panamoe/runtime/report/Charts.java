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

    /**
     * Training tokens per second: every step drawn lightly, and its running median, which a few
     * fast or stalled steps (a noisy machine, a GC pause) do not move. The y axis ends a little above
     * the 99th percentile of the steps, so that a rare spike does not flatten everything else.
     */
    static XYChart throughput(List<StepMetrics> steps) {
        XYChart chart = lineChart("Throughput", "tokens / s");
        chart.getStyler().setYAxisMin(0.0); // from zero, so that noise does not look like a collapse
        double[] x = new double[steps.size()];
        double[] y = new double[steps.size()];
        for (int i = 0; i < steps.size(); i++) {
            x[i] = steps.get(i).step();
            y[i] = steps.get(i).tokensPerSecond();
        }
        int window = medianWindow(steps.size());
        double[] smooth = runningMedian(y, window);
        XYSeries raw = chart.addSeries("every step", x, y);
        look(raw, new Color(0xa6c8e8), SeriesMarkers.NONE, new BasicStroke(1f));
        look(chart.addSeries("median of " + Plural.of(window, "step"), x, smooth), new Color(0x1f4e8c),
                SeriesMarkers.NONE, SeriesLines.SOLID);
        double[] sorted = y.clone();
        java.util.Arrays.sort(sorted);
        double top = Math.max(sorted[(int) Math.floor(0.99 * (sorted.length - 1))],
                java.util.Arrays.stream(smooth).max().orElse(0));
        if (top > 0) {
            chart.getStyler().setYAxisMax(1.1 * top);
        }
        return chart;
    }

    /** An odd window of about a twentieth of the run, 1 (no smoothing) to 51 steps. */
    static int medianWindow(int steps) {
        return Math.min(51, Math.max(1, steps / 20) | 1);
    }

    /** The median of the window centred on each value (shrunk at the ends). */
    static double[] runningMedian(double[] values, int window) {
        double[] out = new double[values.length];
        int half = window / 2;
        for (int i = 0; i < values.length; i++) {
            double[] w = java.util.Arrays.copyOfRange(values, Math.max(0, i - half), Math.min(values.length, i + half + 1));
            java.util.Arrays.sort(w);
            out[i] = w.length % 2 == 1 ? w[w.length / 2] : (w[w.length / 2 - 1] + w[w.length / 2]) / 2;
        }
        return out;
    }

    /**
     * One MoE layer's load: rows are experts, columns step bins, cells each expert's share of the
     * layer's token-to-expert assignments in that bin (1/experts everywhere when perfectly balanced).
     */
    static HeatMap expertLoad(String title, List<StepMetrics> steps, int layer) {
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
        // Diverging at the balanced share: cold experts blue, hot ones red, balanced ones pale.
        double balanced = 1.0 / experts;
        double top = Math.max(Math.ceil(maxShare * 20) / 20, balanced + 0.05);
        ColourBar bar = new ColourBar("share of tokens", new double[] {0, balanced, top},
                new Color[] {new Color(0x2166ac), new Color(0xf7f7f7), new Color(0xb2182b)},
                List.of(new ColourBar.Mark(balanced, "balanced 1/" + experts)));
        HeatMapChart chart = heatMap(title, "step (end of bin)", "expert", bar);
        chart.getStyler().setXAxisLabelRotation(90);
        chart.addSeries("share of tokens", binEnds, range(experts), cells);
        return new HeatMap(chart, bar);
    }

    /** P(source | expert) of one MoE layer: rows experts, columns sources. */
    static HeatMap specialisation(String title, double[][] sourceGivenExpert) {
        int experts = sourceGivenExpert.length;
        int sources = sourceGivenExpert[0].length;
        List<Number[]> cells = new ArrayList<>(experts * sources);
        for (int e = 0; e < experts; e++)
            for (int s = 0; s < sources; s++)
                cells.add(new Number[] {s, e, sourceGivenExpert[e][s]});
        // The scale ends just above the largest value (not at 1, which routing rarely nears), light
        // to mid blue so that the black values printed in the cells stay legible on every colour.
        double max = java.util.Arrays.stream(sourceGivenExpert).flatMapToDouble(java.util.Arrays::stream).max().orElse(0);
        double uniform = 1.0 / sources;
        double top = Math.min(1, Math.max(Math.ceil(max * 10) / 10, uniform + 0.1));
        ColourBar bar = new ColourBar("P(source | expert)", new double[] {0, uniform, top},
                new Color[] {new Color(0xffffd9), new Color(0xc7e9b4), new Color(0x1d91c0)},
                List.of(new ColourBar.Mark(uniform, "uniform 1/" + sources)));
        HeatMapChart chart = heatMap(title, "source", "expert", bar);
        // Values printed in the cells only while they stay legible.
        chart.getStyler().setShowValue(experts * sources <= 128).setHeatMapValueDecimalPattern("0.00")
                .setValueFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11)).setValueFontColor(Color.BLACK);
        chart.addSeries("P(source | expert)", range(sources), range(experts), cells);
        return new HeatMap(chart, bar);
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

    /** A heat map and its colour bar, drawn side by side. */
    record HeatMap(HeatMapChart chart, ColourBar bar) {
        byte[] png() {
            return bar.png(chart, WIDTH, HEIGHT);
        }
    }

    private static HeatMapChart heatMap(String title, String xTitle, String yTitle, ColourBar bar) {
        // Unlike the other charts, XChart 3.8.8's HeatMapChart(width, height) applies no theme and
        // fails to paint (null fonts and formats); the theme must be named.
        HeatMapChart chart = new HeatMapChart(WIDTH - ColourBar.WIDTH, HEIGHT, Styler.ChartTheme.XChart);
        chart.setTitle(title);
        chart.setXAxisTitle(xTitle);
        chart.setYAxisTitle(yTitle);
        ChartStyle.apply(chart.getStyler());
        chart.getStyler().setDrawBorder(false);
        bar.applyTo(chart);
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
