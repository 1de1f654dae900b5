package dev.panamoe.runtime.report;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MetricsWriterTest {

    @TempDir
    Path dir;

    /** Step s; odd steps in bf16 (a run resumed under the other precision changes it). */
    static StepMetrics step(long step, double valLoss) {
        return new StepMetrics(step, 4.5 - 0.01 * step, valLoss, 12345.678 + step, 0.0123, 3e-4, 1.25,
                new int[][] {{(int) step, 2, 3}, {7, 0, 5}}, (int) step % 3, 2 * ((int) step % 3),
                step % 2 == 1 ? "bf16" : "fp32");
    }

    static List<StepMetrics> steps(int n) {
        List<StepMetrics> steps = new ArrayList<>();
        for (int s = 1; s <= n; s++)
            steps.add(step(s, s % 5 == 0 ? 4.0 - 0.001 * s : Double.NaN));
        return steps;
    }

    @Test
    void roundTripKeepsEveryValueAndWritesExactlyTheKeys() throws IOException {
        Path file = dir.resolve("metrics.jsonl");
        List<StepMetrics> written = steps(12);
        try (MetricsWriter writer = MetricsWriter.create(file)) {
            for (StepMetrics m : written)
                writer.write(m);
        }
        assertEquals(written, MetricsWriter.read(file));

        List<String> lines = Files.readAllLines(file);
        assertEquals(12, lines.size());
        for (String line : lines) {
            JsonObject json = JsonParser.parseString(line).getAsJsonObject();
            assertEquals(MetricsWriter.KEYS, new ArrayList<>(json.keySet()), line);
        }
        assertTrue(lines.get(0).contains("\"val_loss\":null"), lines.get(0));
        JsonObject fifth = JsonParser.parseString(lines.get(4)).getAsJsonObject();
        assertEquals(4.0 - 0.005, fifth.get("val_loss").getAsDouble());
        assertEquals("[[5,2,3],[7,0,5]]", fifth.get("expert_counts").toString());
        assertEquals(2, fifth.get("placement_changes").getAsInt());
        assertEquals(4, fifth.get("moved_slots").getAsInt());
        assertEquals("bf16", fifth.get("precision").getAsString());
        assertEquals("fp32", JsonParser.parseString(lines.get(5)).getAsJsonObject().get("precision").getAsString());
    }

    /** A line written before runs recorded their precision reads as fp32, what those runs trained in. */
    @Test
    void aLineWithoutPrecisionTrainedInFp32() throws IOException {
        Path file = dir.resolve("old.jsonl");
        JsonObject json = JsonParser.parseString(MetricsWriter.toJson(step(3, Double.NaN))).getAsJsonObject();
        json.remove("precision");
        Files.writeString(file, json + "\n");
        StepMetrics read = MetricsWriter.read(file).getFirst();
        assertEquals("fp32", read.precision());
        assertEquals(step(3, Double.NaN).loss(), read.loss());
        var e = assertThrows(IllegalArgumentException.class, () -> new StepMetrics(1, 1, 1, 1, 0, 1, 1, new int[0][], 0, 0,
                "fp16"));
        assertEquals("precision must be fp32 or bf16, got fp16", e.getMessage());
    }

    @Test
    void eachLineIsOnDiskBeforeClose() {
        Path file = dir.resolve("m.jsonl");
        try (MetricsWriter writer = MetricsWriter.create(file)) {
            writer.write(step(1, Double.NaN));
            writer.write(step(2, 3.5));
            assertEquals(List.of(step(1, Double.NaN), step(2, 3.5)), MetricsWriter.read(file));
        }
    }

    @Test
    void nonFiniteNumbersBecomeNullAndReadBackAsNaN() {
        Path file = dir.resolve("m.jsonl");
        StepMetrics diverged = new StepMetrics(3, Double.POSITIVE_INFINITY, Double.NaN, 1, Double.NaN, 1e-3,
                Double.NEGATIVE_INFINITY, new int[0][]);
        try (MetricsWriter writer = MetricsWriter.create(file)) {
            writer.write(diverged);
        }
        StepMetrics back = MetricsWriter.read(file).getFirst();
        assertTrue(Double.isNaN(back.loss()) && Double.isNaN(back.gradNorm()) && Double.isNaN(back.auxLoss()), back.toString());
        assertEquals(1e-3, back.lr());
    }

    @Test
    void createReplacesAnOldFile() throws IOException {
        Path file = dir.resolve("m.jsonl");
        Files.writeString(file, "old content that is not json\n".repeat(3));
        try (MetricsWriter writer = MetricsWriter.create(file)) {
            writer.write(step(1, Double.NaN));
        }
        assertEquals(List.of(step(1, Double.NaN)), MetricsWriter.read(file));
    }

    @Test
    void resumeKeepsStepsUpToTheCheckpointAndAppends() {
        Path file = dir.resolve("m.jsonl");
        try (MetricsWriter writer = MetricsWriter.create(file)) {
            for (StepMetrics m : steps(9))
                writer.write(m);
        }
        try (MetricsWriter writer = MetricsWriter.resume(file, 6)) {
            for (StepMetrics m : steps(12).subList(6, 12))
                writer.write(m);
        }
        assertEquals(steps(12), MetricsWriter.read(file));

        Path fresh = dir.resolve("fresh.jsonl");
        try (MetricsWriter writer = MetricsWriter.resume(fresh, 100)) {
            writer.write(step(101, Double.NaN));
        }
        assertEquals(List.of(step(101, Double.NaN)), MetricsWriter.read(fresh));
    }

    @Test
    void aLastLineCutShortByACrashIsSkipped() throws IOException {
        Path file = dir.resolve("m.jsonl");
        String complete = MetricsWriter.toJson(step(1, Double.NaN)) + "\n" + MetricsWriter.toJson(step(2, 3.0)) + "\n";
        Files.writeString(file, complete + MetricsWriter.toJson(step(3, Double.NaN)).substring(0, 40));
        assertEquals(List.of(step(1, Double.NaN), step(2, 3.0)), MetricsWriter.read(file));
    }

    @Test
    void malformedLinesFailWithFileAndLineNumber() throws IOException {
        Path file = dir.resolve("bad.jsonl");
        String good = MetricsWriter.toJson(step(1, Double.NaN));
        Files.writeString(file, good + "\n{\"step\":2,\"loss\":1\n" + good + "\n");
        var e = assertThrows(IllegalArgumentException.class, () -> MetricsWriter.read(file));
        assertTrue(e.getMessage().contains("bad.jsonl line 2"), e.getMessage());

        Files.writeString(file, good.replace("\"grad_norm\":1.25,", "") + "\n");
        e = assertThrows(IllegalArgumentException.class, () -> MetricsWriter.read(file));
        assertTrue(e.getMessage().contains("line 1: missing key 'grad_norm'"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> MetricsWriter.read(dir.resolve("none.jsonl")));
        assertTrue(e.getMessage().contains("none.jsonl does not exist"), e.getMessage());
    }

    @Test
    void stepMetricsCopiesCountsAndRejectsBadInput() {
        int[][] counts = {{1, 2}};
        StepMetrics m = new StepMetrics(1, 1, Double.NaN, 1, 0, 1, 1, counts);
        counts[0][0] = 99;
        assertEquals(1, m.expertCounts()[0][0]);
        var e = assertThrows(IllegalArgumentException.class, () -> new StepMetrics(-1, 1, 1, 1, 0, 1, 1, counts));
        assertTrue(e.getMessage().contains("step must be >= 0, got -1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new StepMetrics(1, 1, 1, 1, 0, 1, 1, new int[][] {null}));
        assertTrue(e.getMessage().contains("expertCounts[0] is null"), e.getMessage());
    }
}
