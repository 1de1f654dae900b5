package dev.panamoe.jmh;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Merges the GPU suite's result files, pmoe_gpu_bench's (ours) and torch_anchors.py's (PyTorch on
 * the same machine, same shapes, same routing), into {@code gpu-<card>-<date>.json} and
 * {@code gpu-<card>-<date>.md}: one row per measurement of ours, with the matching PyTorch numbers
 * side by side, their ratio, and the issue's target for that row; then the training steps of
 * {@link GpuStepTimeline}'s files (one per precision).
 *
 * <p>Usage: {@code java -cp panamoe.jar:panamoe-jmh.jar dev.panamoe.jmh.GpuSuiteReport
 * <bench.json> <torch.json> <timeline.json>... <out-dir>}. A missing or unreadable file counts as
 * "not measured".
 */
public final class GpuSuiteReport {
    private GpuSuiteReport() {}

    /** PyTorch implementations, in the order of the table's columns. */
    static final List<String> TORCH_IMPLS = List.of("torch", "torch_grouped_mm", "torch_loop", "torch_matmul");
    /** The layer shapes where issue 11 asks the bf16 layer to be 1.1x PyTorch's bf16 (jmh MoeShape's). */
    static final List<String> ISSUE_11_SHAPES = List.of(MoeShape.MIXTRAL_4.name(), MoeShape.DEEPSEEK_4.name());

    /** One row of the table: our measurement and PyTorch's of the same case and op. */
    record Row(String model, int tokens, String routing, String op, JsonObject ours, Map<String, JsonObject> torch) {
        String key() {
            return model + "/" + tokens + "/" + routing + "/" + op;
        }

        /** The PyTorch implementation ours is compared with: grouped_mm for GEMMs, the loop for layers. */
        String referenceImpl() {
            if (op.startsWith("grouped_gemm")) return "torch_grouped_mm";
            if (op.startsWith("layer")) return "torch_loop";
            return "torch";
        }

        /**
         * Ours over PyTorch's reference as a speed-up: above 1 means ours is faster. Null when
         * either side has no measurement.
         */
        Double speedup() {
            JsonObject ref = torch.get(referenceImpl());
            if (!ok(ours) || !ok(ref)) return null;
            return ref.get("median_us").getAsDouble() / ours.get("median_us").getAsDouble();
        }

        /** The issue's target for this row, and whether it was met; empty when the row has none. */
        String target() {
            Double speedup = speedup();
            if (op.startsWith("grouped_gemm"))
                return verdict(">= torch._grouped_mm", speedup == null ? null : speedup >= 1);
            if (op.startsWith("permute") || op.startsWith("combine"))
                return verdict(">= 2400 GB/s", ok(ours) ? ours.get("gbps").getAsDouble() >= 2400 : null);
            if (op.equals("router") && tokens == 4096 && model.equals("deepseek"))
                return verdict("< 20 us", ok(ours) ? ours.get("median_us").getAsDouble() < 20 : null);
            if (op.equals("layer_fwd_bwd_bf16") && ISSUE_11_SHAPES.contains(model))
                return verdict(">= 1.1x PyTorch's bf16 loop", speedup == null ? null : speedup >= 1.1);
            if (op.startsWith("layer_fwd_bwd"))
                return verdict("faster than the PyTorch loop", speedup == null ? null : speedup > 1);
            return "";
        }
    }

    static boolean ok(JsonObject r) {
        return r != null && "ok".equals(string(r, "status"));
    }

    private static String verdict(String target, Boolean met) {
        return target + ": " + (met == null ? "not measured" : met ? "met" : "missed");
    }

    private static String string(JsonObject o, String name) {
        return o != null && o.has(name) && !o.get(name).isJsonNull() ? o.get(name).getAsString() : "";
    }

    /** A result file, or an object whose "status"/"reason" say why there is none. */
    static JsonObject read(Path file) {
        try {
            return JsonParser.parseString(Files.readString(file)).getAsJsonObject();
        } catch (IOException | RuntimeException e) {
            JsonObject missing = new JsonObject();
            missing.addProperty("status", "unavailable");
            missing.addProperty("reason", "no results: cannot read " + file + " (" + e + ")");
            return missing;
        }
    }

    private static List<JsonObject> results(JsonObject doc) {
        List<JsonObject> list = new ArrayList<>();
        if (doc.has("results")) for (JsonElement e : doc.getAsJsonArray("results")) list.add(e.getAsJsonObject());
        return list;
    }

    private static String key(JsonObject r) {
        return string(r, "model") + "/" + r.get("tokens").getAsInt() + "/" + string(r, "routing") + "/" + string(r, "op");
    }

    /** Rows in the order of our results, then PyTorch-only rows (ops that ours does not run). */
    static List<Row> rows(JsonObject bench, JsonObject torch) {
        Map<String, Row> rows = new LinkedHashMap<>();
        for (JsonObject r : results(bench))
            rows.put(key(r), new Row(string(r, "model"), r.get("tokens").getAsInt(), string(r, "routing"),
                    string(r, "op"), r, new LinkedHashMap<>()));
        for (JsonObject t : results(torch))
            rows.computeIfAbsent(key(t), k -> new Row(string(t, "model"), t.get("tokens").getAsInt(),
                    string(t, "routing"), string(t, "op"), null, new LinkedHashMap<>()))
                    .torch().put(string(t, "impl"), t);
        return new ArrayList<>(rows.values());
    }

    /** The "device" object of a result file, if it names one (else an empty object). */
    private static JsonObject device(JsonObject doc) {
        JsonObject d = doc.has("device") ? doc.getAsJsonObject("device") : null;
        return d != null && !string(d, "name").isEmpty() ? d : new JsonObject();
    }

    /** "slug" of the device name: "NVIDIA H100 80GB HBM3" -> "h100-80gb-hbm3". */
    static String card(JsonObject bench, JsonObject torch) {
        String name = string(device(bench).has("name") ? device(bench) : device(torch), "name");
        if (name.isEmpty()) return "unknown";
        String slug = name.strip().toLowerCase(Locale.ROOT).replaceFirst("^nvidia\\s+", "").replaceAll("[^a-z0-9]+", "-");
        return slug.replaceAll("^-|-$", "");
    }

    /**
     * A measurement as the table shows it: rate (time), or time (rate) for the routing ops, whose
     * target is a time; or why there is none.
     */
    static String cell(JsonObject r) {
        if (r == null) return "not measured";
        if (!ok(r)) return string(r, "status") + (r.has("reason") ? ": " + string(r, "reason").replace('|', '/') : "");
        double us = r.get("median_us").getAsDouble();
        String time = us >= 1000 ? String.format(Locale.ROOT, "%.2f ms", us / 1000) : String.format(Locale.ROOT, "%.1f us", us);
        String rate = has(r, "tflops") ? String.format(Locale.ROOT, "%.1f TFLOP/s", r.get("tflops").getAsDouble())
                : has(r, "gbps") ? String.format(Locale.ROOT, "%.0f GB/s", r.get("gbps").getAsDouble()) : null;
        if (rate == null) return time;
        return string(r, "op").startsWith("router") ? time + " (" + rate + ")" : rate + " (" + time + ")";
    }

    private static boolean has(JsonObject r, String name) {
        return r.has(name) && !r.get(name).isJsonNull();
    }

    static String markdown(JsonObject bench, JsonObject torch, List<JsonObject> timelines, List<Row> rows,
            String date) {
        StringBuilder md = new StringBuilder();
        JsonObject device = device(bench).has("name") ? device(bench) : device(torch);
        md.append("# GPU suite: ").append(string(device, "name").isEmpty() ? "no GPU" : string(device, "name"))
                .append(", ").append(date).append("\n\n");
        if (!string(device, "name").isEmpty())
            md.append(String.format(Locale.ROOT, "Device: %s, compute capability %s, %s SMs; CUDA driver %s. ",
                    string(device, "name"), string(device, "compute_capability"), string(device, "multiprocessors"),
                    string(device, "driver")));
        md.append("PyTorch: ").append(torch.has("torch") ? string(torch, "torch") : "not run").append(".\n");
        for (JsonObject doc : List.of(bench, torch))
            if (doc.has("reason")) md.append("\n").append(string(doc, "tool").isEmpty() ? "results" : string(doc, "tool"))
                    .append(": ").append(string(doc, "reason")).append("\n");
        md.append("""

                Medians of CUDA-event timings after warm-up, inputs rotated over buffer sets when one set \
                would fit in L2. TFLOP/s count real rows (tokens x top-k, no padding); GB/s count each \
                tensor read or written once. Both sides use the same routing (same group sizes). Ratio: \
                PyTorch's reference time over ours (grouped GEMMs: torch._grouped_mm; layers: the \
                per-expert loop; others: the plain PyTorch code), above 1 = ours faster. The bf16 layers: \
                ours as MoELayer runs it in mixed precision (bf16 rows and working weights, f32 router, \
                weight gradients accumulated in f32), PyTorch's with bf16 weights and gradients.

                | model | tokens | routing | op | PanaMoE | PyTorch reference | ratio | other PyTorch | target |
                |---|---:|---|---|---:|---:|---:|---|---|
                """);
        for (Row row : rows) {
            String ref = row.referenceImpl();
            StringBuilder others = new StringBuilder();
            for (String impl : TORCH_IMPLS)
                if (!impl.equals(ref) && row.torch().containsKey(impl))
                    others.append(others.isEmpty() ? "" : "; ").append(impl).append(": ").append(cell(row.torch().get(impl)));
            Double speedup = row.speedup();
            md.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |%n", row.model(),
                    row.tokens(), row.routing(), row.op(), cell(row.ours()),
                    ref + ": " + cell(row.torch().get(ref)),
                    speedup == null ? "" : String.format(Locale.ROOT, "%.2fx", speedup), others, row.target()));
        }
        md.append("\n## Training step\n");
        for (JsonObject t : timelines) md.append("\n").append(trainingStep(t));
        return md.toString();
    }

    /** A paragraph on one GpuStepTimeline run: median step times, host syncs, costliest operators. */
    static String trainingStep(JsonObject t) {
        StringBuilder md = new StringBuilder();
        if (!t.has("steps")) return md.append("Not measured: ").append(string(t, "reason")).append("\n").toString();
        int after = 0;
        List<Double> syncs = new ArrayList<>();
        for (JsonElement e : t.getAsJsonArray("steps")) {
            JsonObject s = e.getAsJsonObject();
            if (s.get("warmup").getAsBoolean()) continue;
            after++;
            if (s.has("host_syncs")) syncs.add(s.get("host_syncs").getAsDouble());
        }
        JsonObject median = t.getAsJsonObject("median_after_warmup");
        // a file written before the timeline recorded its precision trained in fp32
        String precision = t.has("precision") ? string(t, "precision") : "fp32";
        md.append(String.format(Locale.ROOT, "Preset %s in %s, batch %d x seq %d, on %s; medians of %d steps after %d "
                        + "warm-up: host %.2f ms per step", string(t, "preset"), precision, t.get("batch").getAsInt(),
                t.get("seq").getAsInt(),
                string(t, "device"), after, t.get("warmup_steps").getAsInt(), median.get("host_ms").getAsDouble()));
        md.append(median.has("gpu_ms") ? String.format(Locale.ROOT, ", GPU %.2f ms (CUDA events)", median.get("gpu_ms").getAsDouble())
                : "; GPU " + string(t, "gpu_ms"));
        md.append(". Host syncs per step: ").append(syncs.isEmpty() ? string(t, "host_syncs")
                : String.format(Locale.ROOT, "%.0f (median)", syncs.stream().sorted().toList().get(syncs.size() / 2)));
        md.append(". Most host time per step:");
        JsonArray ops = t.getAsJsonArray("operators");
        for (int i = 0; i < Math.min(5, ops.size()); i++) {
            JsonObject op = ops.get(i).getAsJsonObject();
            md.append(String.format(Locale.ROOT, "%s %s %.2f ms", i == 0 ? "" : ",", string(op, "name"),
                    op.get("host_ms_per_step").getAsDouble()));
        }
        return md.append(".\n").toString();
    }

    static JsonObject merged(JsonObject bench, JsonObject torch, List<JsonObject> timelines, List<Row> rows,
            String date, String card) {
        JsonObject doc = new JsonObject();
        doc.addProperty("date", date);
        doc.addProperty("card", card);
        doc.add("bench", bench);
        doc.add("torch", torch);
        JsonArray runs = new JsonArray();
        timelines.forEach(runs::add);
        doc.add("timelines", runs);
        JsonArray table = new JsonArray();
        for (Row row : rows) {
            JsonObject o = new JsonObject();
            o.addProperty("key", row.key());
            o.addProperty("reference", row.referenceImpl());
            Double speedup = row.speedup();
            if (speedup != null) o.addProperty("speedup_vs_reference", speedup);
            o.addProperty("target", row.target());
            table.add(o);
        }
        doc.add("comparison", table);
        return doc;
    }

    /** Writes gpu-<card>-<date>.json and .md into outDir; returns the two paths. */
    static List<Path> write(Path benchFile, Path torchFile, List<Path> timelineFiles, Path outDir, String date)
            throws IOException {
        JsonObject bench = read(benchFile), torch = read(torchFile);
        List<JsonObject> timelines = timelineFiles.stream().map(GpuSuiteReport::read).toList();
        List<Row> rows = rows(bench, torch);
        String base = "gpu-" + card(bench, torch) + "-" + date;
        Files.createDirectories(outDir);
        Path json = outDir.resolve(base + ".json"), md = outDir.resolve(base + ".md");
        Files.writeString(json, new GsonBuilder().setPrettyPrinting().serializeSpecialFloatingPointValues().create()
                .toJson(merged(bench, torch, timelines, rows, date, card(bench, torch))) + "\n");
        Files.writeString(md, markdown(bench, torch, timelines, rows, date));
        return List.of(json, md);
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 4) {
            System.err.println("usage: GpuSuiteReport <bench.json> <torch.json> <timeline.json>... <out-dir>");
            System.exit(2);
        }
        List<Path> timelines = Arrays.stream(args, 2, args.length - 1).map(Path::of).toList();
        for (Path p : write(Path.of(args[0]), Path.of(args[1]), timelines, Path.of(args[args.length - 1]),
                LocalDate.now(ZoneOffset.UTC).toString()))
            System.out.println("GpuSuiteReport: wrote " + p);
    }
}
