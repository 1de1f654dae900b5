package dev.panamoe.runtime.report;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainingReportTest {

    static final byte[] PNG_MAGIC = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    @TempDir
    Path dir;

    /** A plausible run: loss decaying towards the floor, 2 MoE layers of 8 experts, 4 sources. */
    static ReportData sampleRun(int steps) {
        Random random = new Random(42);
        List<StepMetrics> metrics = new ArrayList<>();
        for (int s = 1; s <= steps; s++) {
            double loss = 1.6 + 2.4 * Math.exp(-s / 60.0) + 0.03 * random.nextGaussian();
            int[][] counts = new int[2][8];
            for (int[] layer : counts)
                for (int e = 0; e < 8; e++)
                    layer[e] = 100 + (e == s % 8 ? 150 : 0) + random.nextInt(40);
            metrics.add(new StepMetrics(s, loss, s % 25 == 0 ? loss + 0.05 : Double.NaN,
                    20_000 + 1_000 * random.nextGaussian(), 0.01, 1e-3, 1.0, counts, s % 50 == 0 ? 2 : 0,
                    s % 50 == 0 ? 3 : 0));
        }
        long[][][] sources = new long[2][8][4];
        for (int layer = 0; layer < 2; layer++)
            for (int e = 0; e < 8; e++)
                for (int src = 0; src < 4; src++)
                    sources[layer][e][src] = src == e / 2 ? 900 : 30 * (layer + 1);
        Map<String, String> config = new LinkedHashMap<>();
        config.put("preset", "tiny");
        config.put("experts", "8, top-2");
        config.put("note", "a <b> & \"c\"");
        OperatorTimer timer = new OperatorTimer();
        timer.add("attention", 6_000_000);
        timer.add("moe.experts", 3_000_000);
        timer.add("optimizer", 1_000_000);
        return new ReportData("tiny on synthetic corpus", config, metrics, 3.2, 1.5, sources, timer.entries());
    }

    @Test
    void writesIndexAndEveryChartAsReadablePngs() throws IOException {
        ReportData data = sampleRun(200);
        Path out = dir.resolve("nested/report");
        Path index = TrainingReport.write(out, data);
        assertEquals(out.resolve("index.html"), index);

        List<String> charts = List.of("loss.png", "throughput.png", "expert-load-0.png", "expert-load-1.png",
                "specialisation-0.png", "specialisation-1.png");
        for (String chart : charts) {
            byte[] bytes = Files.readAllBytes(out.resolve(chart));
            assertArrayEquals(PNG_MAGIC, Arrays.copyOf(bytes, 8), chart);
            BufferedImage image = ImageIO.read(out.resolve(chart).toFile());
            assertEquals(Charts.WIDTH, image.getWidth(), chart);
            assertEquals(Charts.HEIGHT, image.getHeight(), chart);
            assertTrue(distinctColours(image) >= 4, chart + " looks blank: " + distinctColours(image) + " colours");
        }
        try (var files = Files.list(out)) {
            List<String> names = files.map(p -> p.getFileName().toString()).sorted().toList();
            List<String> expected = new ArrayList<>(charts);
            expected.add("index.html");
            assertEquals(expected.stream().sorted().toList(), names, "no temporary files left behind");
        }

        String html = Files.readString(index, StandardCharsets.UTF_8);
        for (String chart : charts)
            assertTrue(html.contains("<img src=\"" + chart + "\""), chart);
        assertTrue(html.contains("<style>") && !html.contains("<script") && !html.contains("http"), "inline CSS only");
        assertTrue(html.contains("<th>note</th><td>a &lt;b&gt; &amp; &quot;c&quot;</td>"), "escaped config");
        assertTrue(html.contains("<th>loss floor</th><td>1.5000</td>"));
        assertTrue(html.contains("<th>unigram loss</th><td>3.2000</td>"));
        assertTrue(html.contains("<th>expert placement changes</th><td>8 layer changes, 12 slots moved</td>"), "placement");
        StepMetrics last = data.steps().getLast();
        assertTrue(html.contains(String.format(java.util.Locale.ROOT, "<td>%.4f (step 200)</td>", last.valLoss())));
        assertTrue(html.contains(String.format(java.util.Locale.ROOT, "<th>gap closed</th><td>%.1f%%</td>",
                100 * (3.2 - last.valLoss()) / (3.2 - 1.5))));
        // Layer 0: dominant 900 of 990 per expert; layer 1: 900 of 1080.
        assertTrue(html.contains("<th>specialisation, MoE layer 0</th><td>purity 0.909 (chance 0.250)</td>"));
        assertTrue(html.contains("<th>specialisation, MoE layer 1</th><td>purity 0.833 (chance 0.250)</td>"));
        assertTrue(html.contains("<tr><td>attention</td><td>6.0</td><td>1</td><td>6000.0</td><td>60.0%</td></tr>"));
        assertTrue(html.contains("<tr><td>optimizer</td><td>1.0</td><td>1</td><td>1000.0</td><td>10.0%</td></tr>"));
    }

    /** Colours on a 10-pixel grid: a chart XChart failed to paint is one flat colour. */
    static long distinctColours(BufferedImage image) {
        java.util.Set<Integer> colours = new java.util.HashSet<>();
        for (int y = 0; y < image.getHeight(); y += 10)
            for (int x = 0; x < image.getWidth(); x += 10)
                colours.add(image.getRGB(x, y));
        return colours.size();
    }

    @Test
    void rewritingReplacesTheReportAndTextDataHasNoSpecialisation() throws IOException {
        ReportData synthetic = sampleRun(30);
        TrainingReport.write(dir, synthetic);
        String syntheticHtml = Files.readString(dir.resolve("index.html"));
        assertTrue(syntheticHtml.contains("The dashed lines are the loss of the best unigram model")
                && syntheticHtml.contains("and the loss floor") && syntheticHtml.contains("Gap closed"));
        ReportData text = new ReportData("bytes", Map.of(), synthetic.steps(), 3.2, Double.NaN, null, List.of());
        TrainingReport.write(dir, text);
        String html = Files.readString(dir.resolve("index.html"));
        assertTrue(html.contains("<h1>bytes</h1>"));
        assertTrue(html.contains("<th>loss floor</th><td>n/a</td>") && html.contains("<th>gap closed</th><td>n/a</td>"));
        assertTrue(!html.contains("specialisation-0.png") && html.contains("Operators were not timed"));
        assertTrue(html.contains("The dashed line is the loss of the best unigram model") && !html.contains("loss floor (")
                && !html.contains("Gap closed"), "the text names only the line drawn");
    }

    @Test
    void summaryStatistics() {
        List<StepMetrics> steps = new ArrayList<>();
        double[] rates = {5, 100, 7, 9};
        for (int s = 0; s < 12; s++)
            steps.add(new StepMetrics(s + 1, s, Double.NaN, rates[s % 4], 0, 1, 1, new int[0][]));
        assertEquals(6.5, TrainingReport.finalTrainingLoss(steps, 10)); // mean of 2..11
        assertEquals(8.0, TrainingReport.medianTokensPerSecond(steps)); // 5,5,5,7,7,7 | 9,9,9,100,100,100
        assertEquals(7.0, TrainingReport.medianTokensPerSecond(steps.subList(0, 3)));
        ReportData data = new ReportData("t", Map.of(), steps, 3.0, 1.0, null, List.of());
        assertTrue(Double.isNaN(data.gapClosed()), "no evaluation yet");
    }

    @Test
    void aFileWhereTheDirectoryShouldBeIsAClearError() throws IOException {
        Path file = Files.writeString(dir.resolve("report"), "not a directory");
        var e = assertThrows(IllegalArgumentException.class, () -> TrainingReport.write(file, sampleRun(5)));
        assertEquals("report directory " + file + " exists and is not a directory", e.getMessage());
    }

    @Test
    void inconsistentInputsFailNamingTheStep() {
        List<StepMetrics> steps = List.of(new StepMetrics(1, 1, 1, 1, 0, 1, 1, new int[][] {{1, 2}}),
                new StepMetrics(2, 1, 1, 1, 0, 1, 1, new int[][] {{1, 2, 3}}));
        var e = assertThrows(IllegalArgumentException.class,
                () -> new ReportData("t", Map.of(), steps, 1, 1, null, List.of()));
        assertEquals("step 2 MoE layer 0 has 3 experts, step 1 has 2", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new ReportData("t", Map.of(), steps.subList(0, 1), 1, 1,
                new long[][][] {{{1}, {2}, {3}}}, List.of()));
        assertEquals("expertSourceCounts[0] must have 2 experts, got 3", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new ReportData("t", Map.of(), List.of(), 1, 1, null, List.of()));
        assertEquals("steps must not be empty", e.getMessage());
    }
}
