package dev.panamoe.runtime.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.HeatMapChart;

/**
 * A heat map's colour scale and the labelled bar drawn beside it. XChart 3.8.8's own heat-map
 * legend shows neither what the colours measure nor reference values, so the chart is drawn without
 * it and this bar is painted to its right: a title, ticks, and marks such as the balanced share.
 *
 * @param title  what a colour measures ("share of tokens")
 * @param stops  values in increasing order, from {@code min} to {@code max}, where {@code colours} sit
 * @param marks  reference values drawn across the bar with their labels
 */
public record ColourBar(String title, double[] stops, Color[] colours, List<Mark> marks) {

    /** A reference value on the scale and its label ("balanced 1/8"). */
    public record Mark(double value, String label) {
    }

    /** Pixels right of the chart that the bar takes. */
    static final int WIDTH = 180;

    public ColourBar {
        if (stops.length < 2 || stops.length != colours.length) {
            throw new IllegalArgumentException("stops: need as many (>= 2) as colours, got " + stops.length + " and "
                    + colours.length);
        }
        for (int i = 1; i < stops.length; i++) {
            if (!(stops[i] > stops[i - 1])) {
                throw new IllegalArgumentException("stops: must increase, got " + java.util.Arrays.toString(stops));
            }
        }
        marks = List.copyOf(marks);
    }

    public double min() {
        return stops[0];
    }

    public double max() {
        return stops[stops.length - 1];
    }

    /** The colour of a value: linear between the stops, clamped to the ends. */
    public Color colour(double value) {
        if (!(value > min())) {
            return colours[0];
        }
        for (int i = 1; i < stops.length; i++) {
            if (value <= stops[i]) {
                double t = (value - stops[i - 1]) / (stops[i] - stops[i - 1]);
                Color a = colours[i - 1];
                Color b = colours[i];
                return new Color(mix(a.getRed(), b.getRed(), t), mix(a.getGreen(), b.getGreen(), t),
                        mix(a.getBlue(), b.getBlue(), t));
            }
        }
        return colours[colours.length - 1];
    }

    private static int mix(int a, int b, double t) {
        return (int) Math.round(a + (b - a) * t);
    }

    /**
     * Gives the chart this scale: XChart spreads its range colours evenly over [min, max], so the
     * scale is sampled finely enough that its interpolation matches {@link #colour}.
     */
    void applyTo(HeatMapChart chart) {
        int n = 101;
        Color[] sampled = new Color[n];
        for (int i = 0; i < n; i++) {
            sampled[i] = colour(min() + (max() - min()) * i / (n - 1));
        }
        chart.getStyler().setRangeColors(sampled).setMin(min()).setMax(max()).setLegendVisible(false);
    }

    /** The chart (drawn {@link #WIDTH} narrower than {@code width}) with this bar to its right, as PNG. */
    byte[] png(HeatMapChart chart, int width, int height) {
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            g.drawImage(BitmapEncoder.getBufferedImage(chart), 0, 0, null);
            paint(g, width - WIDTH + 16, 64, 28, height - 64 - 90);
        } finally {
            g.dispose();
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            ImageIO.write(image, "png", bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode chart '" + chart.getTitle() + "' as PNG: " + e, e);
        }
        return bytes.toByteArray();
    }

    private void paint(Graphics2D g, int x, int top, int barWidth, int barHeight) {
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 13));
        g.drawString(title, x, top - 16);
        for (int row = 0; row < barHeight; row++) {
            g.setColor(colour(valueAt(row, barHeight)));
            g.fillRect(x, top + row, barWidth, 1);
        }
        g.setColor(Color.DARK_GRAY);
        g.drawRect(x, top, barWidth, barHeight);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        List<Integer> markRows = new ArrayList<>();
        for (Mark m : marks) {
            markRows.add(rowOf(m.value(), barHeight));
        }
        for (double tick : ticks()) {
            int row = rowOf(tick, barHeight);
            if (markRows.stream().anyMatch(r -> Math.abs(r - row) < 14)) {
                continue; // a mark's label sits there
            }
            g.setColor(Color.DARK_GRAY);
            g.drawLine(x + barWidth, top + row, x + barWidth + 4, top + row);
            g.setColor(Color.BLACK);
            g.drawString(format(tick), x + barWidth + 7, top + row + 4);
        }
        g.setStroke(new BasicStroke(2f));
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 12));
        for (int i = 0; i < marks.size(); i++) {
            int y = top + markRows.get(i);
            g.setColor(Color.BLACK);
            g.drawLine(x - 5, y, x + barWidth + 5, y);
            g.drawString(marks.get(i).label(), x + barWidth + 7, y + 4);
        }
    }

    private double valueAt(int row, int barHeight) {
        return max() - (max() - min()) * (row + 0.5) / barHeight;
    }

    private int rowOf(double value, int barHeight) {
        return (int) Math.round((max() - value) / (max() - min()) * barHeight);
    }

    /** About five round values from min to max. */
    List<Double> ticks() {
        double raw = (max() - min()) / 4;
        double magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
        double step = magnitude * (raw / magnitude <= 1 ? 1 : raw / magnitude <= 2 ? 2 : raw / magnitude <= 5 ? 5 : 10);
        List<Double> ticks = new ArrayList<>();
        for (double t = Math.ceil(min() / step) * step; t <= max() + step * 1e-9; t += step) {
            ticks.add(t);
        }
        return ticks;
    }

    private static String format(double v) {
        return String.format(Locale.ROOT, Math.abs(v) < 1e-12 ? "0" : "%.2f", v);
    }
}
