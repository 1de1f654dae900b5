package dev.panamoe.runtime.report;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The {@code --report DIR} output: {@code index.html} and the PNG charts it shows, side by side in
 * one directory. The page is self-contained apart from those images (inline CSS, no scripts, no
 * network); it references them by file name, so the directory is the unit to copy or publish.
 *
 * <p>Files: {@code loss.png}, {@code throughput.png}, {@code expert-load-L.png} per MoE layer
 * {@code L} (0-based) and, when source counts are given, {@code specialisation-L.png}. Each file is
 * written atomically; {@code index.html} last, so it never references a chart not yet written.
 */
public final class TrainingReport {

    public static final String INDEX = "index.html";
    public static final String LOSS_CHART = "loss.png";
    public static final String THROUGHPUT_CHART = "throughput.png";

    /** Steps averaged for the "final training loss" (one step's loss is noisy). */
    static final int FINAL_LOSS_STEPS = 10;

    private TrainingReport() {
    }

    public static String expertLoadChart(int layer) {
        return "expert-load-" + layer + ".png";
    }

    public static String specialisationChart(int layer) {
        return "specialisation-" + layer + ".png";
    }

    /**
     * Writes the report into {@code dir}, created if missing (an existing file there is an error);
     * returns the path of {@code index.html}.
     */
    public static Path write(Path dir, ReportData data) {
        AtomicFiles.directory(dir);
        List<StepMetrics> steps = data.steps();
        AtomicFiles.write(dir.resolve(LOSS_CHART), Charts.loss(steps, data.unigramLoss(), data.lossFloor()));
        AtomicFiles.write(dir.resolve(THROUGHPUT_CHART), ChartStyle.png(Charts.throughput(steps)));
        for (int layer = 0; layer < data.moeLayers(); layer++)
            AtomicFiles.write(dir.resolve(expertLoadChart(layer)),
                    Charts.expertLoad("Expert load, MoE layer " + layer, steps, layer).png());
        if (data.expertSourceCounts() != null)
            for (int layer = 0; layer < data.moeLayers(); layer++)
                AtomicFiles.write(dir.resolve(specialisationChart(layer)), Charts.specialisation(
                        "P(source | expert), MoE layer " + layer,
                        Specialisation.sourceGivenExpert(data.expertSourceCounts()[layer])).png());
        Path index = dir.resolve(INDEX);
        AtomicFiles.write(index, html(data).getBytes(StandardCharsets.UTF_8));
        return index;
    }

    static String html(ReportData data) {
        StringBuilder page = new StringBuilder();
        page.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>")
                .append(escape(data.title())).append("</title>\n<style>\n").append(CSS).append("</style>\n</head>\n<body>\n")
                .append("<h1>").append(escape(data.title())).append("</h1>\n");
        summary(page, data);
        lossSection(page, data);
        loadSection(page, data);
        if (data.expertSourceCounts() != null)
            specialisationSection(page, data);
        page.append("<h2>Throughput</h2>\n<p>Training tokens processed per second of wall time: every step (light) ")
                .append("and their running median (dark), which a few slow or fast steps do not move. The axis ends ")
                .append("a little above the 99th percentile of the steps.</p>\n");
        image(page, THROUGHPUT_CHART, "tokens per second against step");
        operatorSection(page, data.operatorTimes());
        page.append("</body>\n</html>\n");
        return page.toString();
    }

    private static void summary(StringBuilder page, ReportData data) {
        List<StepMetrics> steps = data.steps();
        List<String[]> rows = new ArrayList<>();
        for (Map.Entry<String, String> e : data.config().entrySet())
            rows.add(new String[] {e.getKey(), e.getValue()});
        rows.add(new String[] {"steps in metrics", steps.getFirst().step() + " to " + steps.getLast().step()});
        int tail = Math.min(FINAL_LOSS_STEPS, steps.size());
        rows.add(new String[] {"final training loss (mean of last " + Plural.of(tail, "step") + ")", nats(finalTrainingLoss(steps, tail))});
        StepMetrics evaluated = data.lastEvaluated();
        rows.add(new String[] {"final validation loss",
                evaluated == null ? "not evaluated" : nats(evaluated.valLoss()) + " (step " + evaluated.step() + ")"});
        rows.add(new String[] {"unigram loss", nats(data.unigramLoss())});
        rows.add(new String[] {"loss floor", nats(data.lossFloor())});
        double gap = data.gapClosed();
        rows.add(new String[] {"gap closed", gapClosed(gap)});
        rows.add(new String[] {"expert placement changes", Plural.of(
                steps.stream().mapToLong(StepMetrics::placementChanges).sum(), "layer change") + ", " + Plural.of(
                steps.stream().mapToLong(StepMetrics::movedSlots).sum(), "slot") + " moved"});
        rows.add(new String[] {"median tokens/s", String.format(Locale.ROOT, "%.0f", medianTokensPerSecond(steps))});
        if (data.expertSourceCounts() != null)
            for (int layer = 0; layer < data.moeLayers(); layer++) {
                long[][] counts = data.expertSourceCounts()[layer];
                rows.add(new String[] {"specialisation, MoE layer " + layer, String.format(Locale.ROOT,
                        "purity %.3f (chance %.3f)", Specialisation.purity(counts), Specialisation.chancePurity(counts))});
            }
        page.append("<h2>Summary</h2>\n<table class=\"summary\">\n");
        for (String[] row : rows)
            page.append("<tr><th>").append(escape(row[0])).append("</th><td>").append(escape(row[1])).append("</td></tr>\n");
        page.append("</table>\n");
    }

    /** The loss chart and a text that names only the reference lines drawn on it (text data has no floor). */
    private static void lossSection(StringBuilder page, ReportData data) {
        boolean unigram = !Double.isNaN(data.unigramLoss());
        boolean floor = !Double.isNaN(data.lossFloor());
        page.append("<h2>Loss</h2>\n<p>Mean cross-entropy per token, in nats: training loss at every step, ")
                .append("validation loss on held-out data where evaluated.");
        if (unigram) {
            page.append(floor ? " The dashed lines are the loss" : " The dashed line is the loss").append(" of the best ")
                    .append("unigram model (predicting token frequencies, ignoring context)");
        }
        if (floor) {
            page.append(unigram ? " and" : " The dashed line is").append(" the loss floor (the expected loss of the ")
                    .append("true predictive distribution of the data's generating process, which no model beats on ")
                    .append("average)");
        }
        if (unigram || floor) {
            page.append('.');
        }
        if (unigram && floor) {
            page.append(" <em>Gap closed</em> = (unigram &minus; final validation) / (unigram &minus; floor).");
        }
        page.append("</p>\n");
        image(page, LOSS_CHART, "training and validation loss against step" + (unigram && floor
                ? ", with unigram loss and floor" : unigram ? ", with unigram loss" : floor ? ", with the floor" : ""));
    }

    private static void loadSection(StringBuilder page, ReportData data) {
        page.append("<h2>Expert load</h2>\n<p>Per MoE layer, each expert's share of the layer's token-to-expert ")
                .append("assignments (a token counts once for each of its top-k experts), with steps summed into at most ")
                .append(Charts.MAX_LOAD_COLUMNS).append(" columns. The colours part at the balanced share 1/experts (marked on the colour bar): experts ")
                .append("below it are blue, above it red; a perfectly balanced layer is pale in every cell.</p>\n");
        for (int layer = 0; layer < data.moeLayers(); layer++)
            image(page, expertLoadChart(layer), "expert load over steps, MoE layer " + layer);
    }

    private static void specialisationSection(StringBuilder page, ReportData data) {
        page.append("<h2>Expert specialisation</h2>\n<p>Each row is one expert; each cell the share of the tokens ")
                .append("routed to it that come from sequences of a given hidden source, P(source | expert). ")
                .append("The score is the <em>purity</em> of the routing: purity = &Sigma;<sub>e</sub> ")
                .append("max<sub>s</sub> n(e, s) / &Sigma;<sub>e,s</sub> n(e, s), the load-weighted mean over experts ")
                .append("of the share of their dominant source. It is 1 when every expert sees a single source; ")
                .append("<em>chance</em> is the purity of routing that ignores the source (the share of the most ")
                .append("frequent source, 1/sources when they are equally frequent).</p>\n");
        for (int layer = 0; layer < data.moeLayers(); layer++)
            image(page, specialisationChart(layer), "P(source | expert), MoE layer " + layer);
    }

    private static void operatorSection(StringBuilder page, List<OperatorTimer.Entry> entries) {
        page.append("<h2>Time per operator</h2>\n");
        if (entries.isEmpty()) {
            page.append("<p>Operators were not timed in this run.</p>\n");
            return;
        }
        page.append("<p>Wall time spent in each operator over the run (forward and backward), and its share of ")
                .append("all timed operators.</p>\n<table class=\"operators\">\n")
                .append("<tr><th>operator</th><th>total ms</th><th>calls</th><th>mean &micro;s</th><th>share</th></tr>\n");
        for (OperatorTimer.Entry e : entries)
            page.append(String.format(Locale.ROOT,
                    "<tr><td>%s</td><td>%.1f</td><td>%d</td><td>%.1f</td><td>%.1f%%</td></tr>%n", escape(e.name()),
                    e.nanos() / 1e6, e.calls(), e.calls() == 0 ? 0.0 : e.nanos() / 1e3 / e.calls(), 100 * e.share()));
        page.append("</table>\n");
    }

    private static void image(StringBuilder page, String file, String alt) {
        page.append("<img src=\"").append(file).append("\" alt=\"").append(escape(alt)).append("\" width=\"")
                .append(Charts.WIDTH).append("\" height=\"").append(Charts.HEIGHT).append("\">\n");
    }

    /** The share of the gap closed as the console and the report both print it: "97.7%", or "n/a". */
    public static String gapClosed(double share) {
        return Double.isNaN(share) ? "n/a" : String.format(Locale.ROOT, "%.1f%%", 100 * share);
    }

    static double finalTrainingLoss(List<StepMetrics> steps, int tail) {
        double sum = 0;
        for (StepMetrics m : steps.subList(steps.size() - tail, steps.size()))
            sum += m.loss();
        return sum / tail;
    }

    static double medianTokensPerSecond(List<StepMetrics> steps) {
        double[] rates = steps.stream().mapToDouble(StepMetrics::tokensPerSecond).sorted().toArray();
        int mid = rates.length / 2;
        return rates.length % 2 == 1 ? rates[mid] : (rates[mid - 1] + rates[mid]) / 2;
    }

    private static String nats(double value) {
        return Double.isNaN(value) ? "n/a" : String.format(Locale.ROOT, "%.4f", value);
    }

    static String escape(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (char c : text.toCharArray())
            switch (c) {
                case '<' -> out.append("&lt;");
                case '>' -> out.append("&gt;");
                case '&' -> out.append("&amp;");
                case '"' -> out.append("&quot;");
                default -> out.append(c);
            }
        return out.toString();
    }

    private static final String CSS = """
            body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; line-height: 1.45; }
            h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
            table { border-collapse: collapse; margin: 1em 0; }
            th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
            table.operators td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
            table.summary th { font-weight: normal; color: #555; }
            img { display: block; max-width: 100%; height: auto; margin: 1em 0; }
            """;
}
