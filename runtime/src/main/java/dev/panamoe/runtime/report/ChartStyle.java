package dev.panamoe.runtime.report;

import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Locale;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.AxesChartStyler;

/** The look every PanaMoE chart shares (the report's and the simulator's), and their PNG encoding. */
public final class ChartStyle {
    private ChartStyle() {
    }

    /**
     * Charts are drawn off-screen; without this a server with no display fails on the first font.
     * Call it before the first chart is constructed (a chart class's static initialiser).
     */
    public static void headless() {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }

    /** White background, sans-serif title and legend, locale-independent axis labels. */
    public static void apply(AxesChartStyler styler) {
        styler.setChartBackgroundColor(Color.WHITE);
        styler.setPlotBackgroundColor(Color.WHITE);
        styler.setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
        styler.setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        styler.setLocale(Locale.ROOT);
    }

    public static byte[] png(Chart<?, ?> chart) {
        try {
            return BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode chart '" + chart.getTitle() + "' as PNG: " + e, e);
        }
    }
}
