package dev.panamoe.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The GPU suite's step timeline on the emulated CUDA device (the same backend code paths, no GPU):
 * every step is recorded, warm-up steps are marked and left out of the operators' totals, and what
 * the machine cannot measure (GPU time) is said, not filled in; host syncs are counted per step.
 */
class GpuStepTimelineTest {
    @ParameterizedTest
    @ValueSource(strings = {"fp32", "bf16"})
    void recordsEveryStepAndTheOperatorsOnTheEmulatedDevice(String precision, @TempDir Path dir) throws Exception {
        Path out = dir.resolve("timeline.json");
        JsonObject doc = GpuStepTimeline.run(GpuStepTimeline.Options.parse(new String[] {"--device", "emulated",
                "--preset", "tiny", "--precision", precision, "--batch", "4", "--seq", "16", "--warmup", "1", "--steps",
                "2", "--out", out.toString()}));
        assertEquals(doc, JsonParser.parseString(Files.readString(out)));
        assertEquals(precision, doc.get("precision").getAsString());
        JsonArray steps = doc.getAsJsonArray("steps");
        assertEquals(3, steps.size());
        for (int i = 0; i < 3; i++) {
            JsonObject s = steps.get(i).getAsJsonObject();
            assertEquals(i + 1, s.get("step").getAsInt());
            assertEquals(i == 0, s.get("warmup").getAsBoolean());
            assertTrue(s.get("host_ms").getAsDouble() > 0, s.toString());
            assertTrue(Double.isFinite(s.get("loss").getAsDouble()), s.toString());
            assertFalse(s.has("gpu_ms"), s.toString());
        }
        assertTrue(doc.get("gpu_ms").getAsString().startsWith("not timed"), doc.toString());
        // The emulated device counts its host syncs: at least the loss read in every step.
        for (JsonElement s : steps) assertTrue(s.getAsJsonObject().get("host_syncs").getAsLong() >= 1, s.toString());
        assertFalse(doc.has("host_syncs"), doc.toString());
        double median = doc.getAsJsonObject("median_after_warmup").get("host_ms").getAsDouble();
        double lo = Math.min(steps.get(1).getAsJsonObject().get("host_ms").getAsDouble(),
                steps.get(2).getAsJsonObject().get("host_ms").getAsDouble());
        double hi = Math.max(steps.get(1).getAsJsonObject().get("host_ms").getAsDouble(),
                steps.get(2).getAsJsonObject().get("host_ms").getAsDouble());
        assertEquals((lo + hi) / 2, median, 1e-9);
        JsonObject adamw = null;
        for (JsonElement e : doc.getAsJsonArray("operators"))
            if (e.getAsJsonObject().get("name").getAsString().equals("adamw")) adamw = e.getAsJsonObject();
        assertTrue(adamw != null, doc.toString());
        assertEquals(1.0, adamw.get("calls_per_step").getAsDouble(), "one optimizer step per training step");
        // The suite's report says what was not measured instead of printing numbers for it.
        String md = GpuSuiteReport.trainingStep(doc);
        assertTrue(md.contains("; GPU not timed: no CUDA events on the emulated device."), md);
        assertTrue(md.startsWith("Preset tiny in " + precision + ", batch 4 x seq 16"), md);
        assertFalse(md.contains("Host syncs per step: not counted"), md);
    }

    @Test
    void badOptionsAreRefusedNamingThem() {
        String[][] bad = {{"--device", "tpu", "--out", "x"}, {"--steps", "0", "--out", "x"}, {"--batch", "two", "--out", "x"},
            {"--warmup", "-1", "--out", "x"}, {"--device", "emulated"}, {"--steps"}, {"--speed", "1", "--out", "x"},
            {"--precision", "fp16", "--out", "x"}};
        String[] named = {"--device", "--steps", "--batch", "--warmup", "--out", "--steps", "--speed", "--precision"};
        for (int i = 0; i < bad.length; i++) {
            String[] args = bad[i];
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> GpuStepTimeline.Options.parse(args));
            assertTrue(e.getMessage().contains(named[i]), e.getMessage());
        }
    }
}
