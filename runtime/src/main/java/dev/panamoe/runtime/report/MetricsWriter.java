package dev.panamoe.runtime.report;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.stream.JsonWriter;

import java.io.BufferedWriter;
import java.io.Closeable;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@code --metrics} file: one JSON object per line and per step, with exactly the keys
 * {@link #KEYS}. {@code val_loss} is {@code null} on steps without evaluation (and any non-finite
 * number is written as {@code null}, read back as {@code NaN}). Each line is flushed as it is
 * written, so a crashed run leaves every completed line on disk.
 */
public final class MetricsWriter implements Closeable {

    /** The keys of every line, in the order they are written. */
    public static final List<String> KEYS =
            List.of("step", "loss", "val_loss", "tokens_per_s", "aux_loss", "lr", "grad_norm", "expert_counts",
                    "placement_changes", "moved_slots", "precision");
    /** Written since runs record it; a line without it (an older file) trained in fp32. */
    private static final String PRECISION = "precision";

    private final Path file;
    private final BufferedWriter out;

    private MetricsWriter(Path file, BufferedWriter out) {
        this.file = file;
        this.out = out;
    }

    /** Starts a new metrics file, replacing any previous one. */
    public static MetricsWriter create(Path file) {
        return open(file, StandardOpenOption.TRUNCATE_EXISTING);
    }

    /**
     * Continues a run resumed from a checkpoint taken after {@code lastStep}: keeps the lines of steps
     * up to {@code lastStep}, drops the later ones (written after the checkpoint by the interrupted
     * run, and about to be recomputed), and appends from there. A missing file is started afresh.
     */
    public static MetricsWriter resume(Path file, long lastStep) {
        if (Files.exists(file)) {
            StringBuilder kept = new StringBuilder();
            for (StepMetrics m : read(file))
                if (m.step() <= lastStep)
                    kept.append(toJson(m)).append('\n');
            AtomicFiles.write(file, kept.toString().getBytes(StandardCharsets.UTF_8));
        }
        return open(file, StandardOpenOption.APPEND);
    }

    private static MetricsWriter open(Path file, StandardOpenOption mode) {
        try {
            return new MetricsWriter(file, Files.newBufferedWriter(file, StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.WRITE, mode));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open metrics file " + file + ": " + e, e);
        }
    }

    /** Appends one line and flushes it to the operating system. */
    public void write(StepMetrics metrics) {
        try {
            out.write(toJson(metrics));
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics file " + file + ": " + e, e);
        }
    }

    @Override
    public void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close metrics file " + file + ": " + e, e);
        }
    }

    /**
     * Reads a metrics file. A last line without its newline that does not parse is the remains of a
     * write cut short by a crash and is skipped; any other malformed line fails with its line number.
     */
    public static List<StepMetrics> read(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("metrics file " + file + " does not exist", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read metrics file " + file + ": " + e, e);
        }
        String[] lines = text.split("\n", -1);
        // After the last '\n' split() yields "" for a complete file, the partial line otherwise.
        int complete = lines.length - 1;
        List<StepMetrics> metrics = new ArrayList<>(lines.length);
        for (int i = 0; i < lines.length; i++) {
            if (lines[i].isBlank())
                continue;
            try {
                metrics.add(fromJson(lines[i]));
            } catch (RuntimeException e) { // Gson reports a wrong shape with several unchecked types
                if (i == complete)
                    break;
                throw new IllegalArgumentException("metrics file " + file + " line " + (i + 1) + ": " + e.getMessage(), e);
            }
        }
        return metrics;
    }

    static String toJson(StepMetrics m) {
        StringWriter text = new StringWriter();
        try (JsonWriter json = new JsonWriter(text)) {
            json.beginObject();
            json.name("step").value(m.step());
            number(json.name("loss"), m.loss());
            number(json.name("val_loss"), m.valLoss());
            number(json.name("tokens_per_s"), m.tokensPerSecond());
            number(json.name("aux_loss"), m.auxLoss());
            number(json.name("lr"), m.lr());
            number(json.name("grad_norm"), m.gradNorm());
            json.name("expert_counts").beginArray();
            for (int[] layer : m.expertCounts()) {
                json.beginArray();
                for (int count : layer)
                    json.value(count);
                json.endArray();
            }
            json.endArray();
            json.name("placement_changes").value(m.placementChanges());
            json.name("moved_slots").value(m.movedSlots());
            json.name(PRECISION).value(m.precision());
            json.endObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e); // a StringWriter does not fail
        }
        return text.toString();
    }

    private static void number(JsonWriter json, double value) throws IOException {
        if (Double.isFinite(value))
            json.value(value);
        else
            json.nullValue();
    }

    static StepMetrics fromJson(String line) {
        JsonObject json = JsonParser.parseString(line).getAsJsonObject();
        for (String key : KEYS)
            if (!json.has(key) && !key.equals(PRECISION))
                throw new IllegalArgumentException("missing key '" + key + "'");
        JsonArray layers = json.getAsJsonArray("expert_counts");
        int[][] counts = new int[layers.size()][];
        for (int layer = 0; layer < counts.length; layer++) {
            JsonArray experts = layers.get(layer).getAsJsonArray();
            counts[layer] = new int[experts.size()];
            for (int e = 0; e < counts[layer].length; e++)
                counts[layer][e] = experts.get(e).getAsInt();
        }
        return new StepMetrics(json.get("step").getAsLong(), number(json, "loss"), number(json, "val_loss"),
                number(json, "tokens_per_s"), number(json, "aux_loss"), number(json, "lr"),
                number(json, "grad_norm"), counts, json.get("placement_changes").getAsInt(),
                json.get("moved_slots").getAsInt(), json.has(PRECISION) ? json.get(PRECISION).getAsString() : "fp32");
    }

    private static double number(JsonObject json, String key) {
        JsonElement value = json.get(key);
        return value.isJsonNull() ? Double.NaN : value.getAsDouble();
    }
}
