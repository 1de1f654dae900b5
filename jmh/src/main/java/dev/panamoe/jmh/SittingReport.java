package dev.panamoe.jmh;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The bench sitting (scripts/bench-sitting.sh): the JMH runs it makes, and the Markdown tables
 * for jmh/README.md it writes from their results and the PyTorch anchors', with ratios taken
 * within the sitting only (ours vs the machine's peak, vs OpenBLAS, vs torch; a bf16 training
 * step vs an fp32 one).
 *
 * <p>{@code SittingReport plan [--quick]} prints one JMH run per line: a name, the benchmark
 * regex, {@code -p} lists and iteration options, at the ISA levels this CPU has (f32 kernels at
 * avx2 and avx512 only: avx512_bf16 adds nothing to f32). {@code SittingReport table DIR} reads
 * the sitting's folder (plan.txt, levels.txt, machine.txt, anchors.json and every run's
 * jmh-NAME.json and jmh-NAME.log), writes DIR/table.md and prints it.
 */
public final class SittingReport {

    /** One JMH invocation of the sitting: its JMH arguments are {@link #jmhArgs}. */
    record Run(String name, String benchmark, Map<String, List<String>> params, String options) {

        String line() {
            return name + " " + String.join(" ", jmhArgs());
        }

        List<String> jmhArgs() {
            List<String> args = new ArrayList<>(List.of(benchmark));
            params.forEach((k, v) -> args.addAll(List.of("-p", k + "=" + String.join(",", v))));
            args.addAll(Arrays.asList(options.split(" ")));
            return args;
        }

        static Run parse(String line) {
            String[] w = line.trim().split("\\s+");
            if (w.length < 2) throw new IllegalArgumentException("plan line: expected 'name benchmark ...', got '" + line + "'");
            Map<String, List<String>> params = new LinkedHashMap<>();
            List<String> options = new ArrayList<>();
            for (int i = 2; i < w.length; i++) {
                if (w[i].equals("-p") && i + 1 < w.length && w[i + 1].contains("=")) {
                    String[] kv = w[++i].split("=", 2);
                    params.put(kv[0], List.of(kv[1].split(",")));
                } else {
                    options.add(w[i]);
                }
            }
            return new Run(w[0], w[1], params, String.join(" ", options));
        }

        /** Every parameter combination the run measures, in JMH's order (keys sorted). */
        List<Map<String, String>> grid() {
            List<Map<String, String>> out = new ArrayList<>(List.of(new TreeMap<>()));
            for (var e : new TreeMap<>(params).entrySet()) {
                List<Map<String, String>> next = new ArrayList<>();
                for (Map<String, String> partial : out) {
                    for (String v : e.getValue()) {
                        Map<String, String> m = new TreeMap<>(partial);
                        m.put(e.getKey(), v);
                        next.add(m);
                    }
                }
                out = next;
            }
            return out;
        }
    }

    static final List<String> F32_LEVELS = List.of("avx2", "avx512");

    /** The sitting's runs at the given (supported) levels; --quick: tiny sizes and one short iteration, to test the script. */
    static List<Run> plan(boolean quick, List<String> levels) {
        List<String> f32 = levels.stream().filter(F32_LEVELS::contains).toList();
        String peak = quick ? "-f 1 -wi 0 -i 1 -r 100ms" : "-f 1 -wi 1 -w 1s -i 3 -r 1s";
        String gemm = quick ? "-f 1 -wi 0 -i 1 -r 100ms" : "-f 1 -wi 1 -w 2s -i 4 -r 2s";
        String moe = quick ? "-f 1 -wi 0 -i 1 -r 100ms" : "-f 1 -wi 1 -w 4s -i 4 -r 4s";
        String step = quick ? "-f 1 -wi 0 -i 1 -r 100ms" : "-f 1 -wi 1 -w 3s -i 5 -r 3s";
        List<String> sizes = quick ? List.of("256x256x256") : List.of("4096x4096x4096", "8192x1024x3584");
        List<String> shapes = quick ? List.of(MoeShape.TINY.name()) : List.of(MoeShape.MIXTRAL_4.name(), MoeShape.DEEPSEEK_4.name());
        List<Run> runs = new ArrayList<>();
        if (levels.isEmpty()) return runs;
        runs.add(new Run("peak", "PeakRateBenchmark", Map.of("isa", levels), peak));
        for (boolean layer : new boolean[] {false, true}) {
            for (String dtype : List.of("f32", "bf16")) {
                List<String> isas = dtype.equals("f32") ? f32 : levels;
                if (isas.isEmpty()) continue;
                runs.add(layer
                        ? new Run("moe-" + dtype, "MoELayerBenchmark.forwardBackward",
                                params("shape", shapes, "dtype", List.of(dtype), "isa", isas), moe)
                        : new Run("gemm-" + dtype, "DenseGemmBenchmark.gemm", withForm(
                                params("size", sizes, "dtype", List.of(dtype), "isa", isas)), gemm));
            }
        }
        // Mixed precision inside training (issue 11), at the CPU's own level: the layer's share of
        // a step (gradients discarded, working copies refreshed) and whole steps in fp32 and bf16.
        String top = levels.getLast();
        runs.add(new Run("moe-train-bf16", "MoELayerBenchmark.trainingStep",
                params("shape", shapes, "dtype", List.of("bf16"), "isa", List.of(top)), moe));
        Map<String, List<String>> steps = new LinkedHashMap<>();
        steps.put("preset", List.of(quick ? "tiny" : "small"));
        steps.put("precision", List.of("fp32", "bf16"));
        runs.add(new Run("step", "TrainingStepBenchmark.step", steps, step));
        return runs;
    }

    /** The plain product (nn): the table's rows name the GEMM's parameters, JMH's results all of them. */
    private static Map<String, List<String>> withForm(Map<String, List<String>> params) {
        params.put("form", List.of("nn"));
        return params;
    }

    private static Map<String, List<String>> params(String k1, List<String> v1, String k2, List<String> v2,
                                                    String k3, List<String> v3) {
        Map<String, List<String>> m = new LinkedHashMap<>();
        m.put(k1, v1);
        m.put(k2, v2);
        m.put(k3, v3);
        return m;
    }

    public static void main(String[] args) throws IOException {
        if (args.length >= 1 && args[0].equals("plan") && args.length <= 2
                && (args.length == 1 || args[1].equals("--quick"))) {
            List<String> levels = Arrays.stream(CpuLevel.values())
                    .filter(l -> l.missingFeature().isEmpty()).map(CpuLevel::isaName).toList();
            plan(args.length == 2, levels).forEach(r -> System.out.println(r.line()));
        } else if (args.length == 2 && args[0].equals("table")) {
            Path dir = Path.of(args[1]);
            if (!Files.isDirectory(dir)) {
                System.err.println("SittingReport: DIR " + dir + " is not a directory");
                System.exit(2);
            }
            String md = table(dir);
            Path tmp = dir.resolve("table.md.tmp");
            Files.writeString(tmp, md);
            Files.move(tmp, dir.resolve("table.md"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            System.out.print(md);
        } else {
            System.err.println("usage: SittingReport plan [--quick] | SittingReport table DIR");
            System.exit(2);
        }
    }

    // ---- the table ----

    /** Results of one sitting folder, looked up by run and parameters. */
    private record Sitting(Map<String, String> machine, String jdk, Map<String, String> levels, JsonObject anchors,
                           Map<String, Double> medians, Map<String, String> failures) {

        Double median(String benchmark, Map<String, String> params) {
            return medians.get(key(benchmark, params));
        }

        Double peak(String level) {
            return median("PeakRateBenchmark.twoThreads", Map.of("isa", level));
        }

        /** An anchor's row of anchors.json (kind, impl, dtype, shape), or null. */
        JsonObject anchor(String kind, String impl, String dtype, String shape) {
            if (anchors == null) return null;
            for (JsonElement e : anchors.getAsJsonArray("results")) {
                JsonObject r = e.getAsJsonObject();
                if (r.get("kind").getAsString().equals(kind) && r.get("impl").getAsString().equals(impl)
                        && r.get("dtype").getAsString().equals(dtype) && (shape == null || r.get("shape").getAsString().equals(shape))) {
                    return r;
                }
            }
            return null;
        }

        double anchorGflops(String kind, String impl, String dtype, String shape) {
            JsonObject r = anchor(kind, impl, dtype, shape);
            return r == null ? Double.NaN : r.get("median_gflops").getAsDouble();
        }
    }

    private static String key(String benchmark, Map<String, String> params) {
        return benchmark + " " + new TreeMap<>(params);
    }

    static String table(Path dir) throws IOException {
        List<Run> runs = Files.readAllLines(dir.resolve("plan.txt")).stream().filter(l -> !l.isBlank()).map(Run::parse).toList();
        Map<String, String> levels = new LinkedHashMap<>();
        for (String line : Files.readAllLines(dir.resolve("levels.txt"))) {
            String[] w = line.trim().split(" ", 2);
            if (w.length == 2) levels.put(w[0], w[1]);
        }
        Map<String, String> machine = new LinkedHashMap<>();
        Path machineFile = dir.resolve("machine.txt");
        if (Files.exists(machineFile)) {
            for (String line : Files.readAllLines(machineFile)) {
                int colon = line.indexOf(':');
                if (colon > 0) machine.put(line.substring(0, colon).trim(), line.substring(colon + 1).trim());
            }
        }
        Path anchorsFile = dir.resolve("anchors.json");
        JsonObject anchors = Files.exists(anchorsFile) ? JsonParser.parseString(Files.readString(anchorsFile)).getAsJsonObject() : null;
        Map<String, Double> medians = new HashMap<>();
        Map<String, String> failures = new HashMap<>();
        String jdk = "?";
        for (Run run : runs) {
            Path json = dir.resolve("jmh-" + run.name() + ".json");
            if (Files.exists(json) && Files.size(json) > 0) jdk = readMedians(Files.readString(json), medians).orElse(jdk);
            Path log = dir.resolve("jmh-" + run.name() + ".log");
            if (Files.exists(log)) failures.putAll(failures(Files.readString(log)));
        }
        Sitting s = new Sitting(machine, jdk, levels, anchors, medians, failures);

        StringBuilder md = new StringBuilder();
        header(md, s);
        peakTable(md, s);
        anchorTable(md, s);
        String previous = "";
        for (Run run : runs) {
            boolean gemm = run.benchmark().startsWith("DenseGemmBenchmark");
            if (gemm || run.benchmark().startsWith("MoELayerBenchmark")) {
                oursRows(md, s, run, gemm, !run.benchmark().equals(previous));
            } else if (run.benchmark().startsWith("TrainingStepBenchmark")) {
                stepRows(md, s, run);
            }
            previous = run.benchmark();
        }
        md.append("\nRatios are of medians over the measured iterations (JMH) or calls (anchors), all from this sitting. ")
                .append("vs peak: the 2-thread peak of the instruction the kernels use (f32, and bf16 widened to f32: ")
                .append("that level's FMA; bf16 at avx512_bf16: vdpbf16ps). GEMMs are compared with the anchors' ")
                .append(anchorGemmShape(s)).append(" GEMMs. Targets are issue 13's (kernels, layer) and issue 11's ")
                .append("(the layer inside training, bf16 training steps), at the levels they are set for.\n");
        return md.toString();
    }

    /**
     * The median over the measured iterations of each result: seconds per operation, or GFLOP/s
     * for PeakRateBenchmark (ops/ms, one op = 1 MFLOP). Returns the JVM they were measured with, if any.
     */
    static Optional<String> readMedians(String json, Map<String, Double> into) {
        JsonArray results = JsonParser.parseString(json).getAsJsonArray();
        Optional<String> jvm = results.isEmpty() ? Optional.empty() : Optional.of(
                results.get(0).getAsJsonObject().get("vmName").getAsString() + " "
                        + results.get(0).getAsJsonObject().get("vmVersion").getAsString());
        for (JsonElement e : results) {
            JsonObject r = e.getAsJsonObject();
            String name = ResultsTable.shortName(r.get("benchmark").getAsString());
            Map<String, String> params = new TreeMap<>();
            if (r.has("params")) r.getAsJsonObject("params").entrySet().forEach(p -> params.put(p.getKey(), p.getValue().getAsString()));
            JsonObject metric = r.getAsJsonObject("primaryMetric");
            String unit = metric.get("scoreUnit").getAsString();
            double median = metric.getAsJsonObject("scorePercentiles").get("50.0").getAsDouble();
            into.put(key(name, params), unit.startsWith("ops/") ? perMs(median, unit) : ResultsTable.toSeconds(median, unit));
        }
        return jvm;
    }

    /** A throughput in operations per millisecond (for PeakRateBenchmark: GFLOP/s). */
    private static double perMs(double value, String unit) {
        return switch (unit) {
            case "ops/s" -> value / 1e3;
            case "ops/ms" -> value;
            case "ops/us" -> value * 1e3;
            default -> throw new IllegalArgumentException("scoreUnit: unsupported '" + unit + "'");
        };
    }

    private static final Pattern PARAMETERS = Pattern.compile("^# Parameters: \\((.*)\\)$");
    private static final Pattern EXCEPTION = Pattern.compile("^[\\w.$]+(?:Exception|Error): (.*)$");

    /** The first exception message JMH logged for each parameter set of a run that failed. */
    static Map<String, String> failures(String log) {
        Map<String, String> out = new HashMap<>();
        String current = null;
        String benchmark = null;
        for (String line : log.split("\n")) {
            if (line.startsWith("# Benchmark: ")) {
                benchmark = ResultsTable.shortName(line.substring("# Benchmark: ".length()).trim());
                current = key(benchmark, Map.of());
            }
            Matcher p = PARAMETERS.matcher(line.trim());
            if (p.matches() && benchmark != null) {
                Map<String, String> params = new TreeMap<>();
                for (String kv : p.group(1).split(",")) {
                    String[] pair = kv.split("=", 2);
                    if (pair.length == 2) params.put(pair[0].trim(), pair[1].trim());
                }
                current = key(benchmark, params);
            }
            Matcher x = EXCEPTION.matcher(line.trim());
            if (x.matches() && current != null) out.putIfAbsent(current, x.group(1));
        }
        return out;
    }

    private static void header(StringBuilder md, Sitting s) {
        Map<String, String> m = s.machine();
        md.append(String.format(Locale.ROOT, "### %s (family %s, model %s), %s%n%n", m.getOrDefault("cpu", "unknown CPU"),
                m.getOrDefault("family", "?"), m.getOrDefault("model", "?"), m.getOrDefault("date", "undated")));
        md.append("One sitting of `scripts/bench-sitting.sh`").append(m.containsKey("code") ? " at " + m.get("code") : "")
                .append(m.containsKey("quick") && m.get("quick").equals("yes")
                ? " **with --quick (tiny sizes: checks the scripts, not the machine)**" : "").append(": ");
        md.append(m.getOrDefault("threads", "2")).append(" threads everywhere; before it, load average ")
                .append(m.getOrDefault("load", "?")).append(", CPU busy ").append(m.getOrDefault("busy", "?"))
                .append(m.getOrDefault("quiet", "").equals("yes") ? " (quiet)" : " (**not quiet**: the numbers are disturbed)")
                .append(". ").append(s.jdk());
        if (s.anchors() != null) {
            JsonObject env = s.anchors().getAsJsonObject("environment");
            md.append("; torch ").append(env.get("torch").getAsString()).append(" (CPU capability ")
                    .append(env.get("torch_cpu_capability").getAsString()).append("), numpy ").append(env.get("numpy").getAsString());
            JsonArray blas = env.getAsJsonArray("numpy_blas");
            if (!blas.isEmpty()) {
                JsonObject b = blas.get(0).getAsJsonObject();
                md.append(" on ").append(b.get("internal_api").getAsString()).append(" ").append(b.get("version").getAsString())
                        .append(" (").append(b.get("architecture").getAsString()).append(" kernels)");
            }
        }
        md.append(".\nCPU flags (vector): ").append(m.getOrDefault("flags", "?")).append(".\n");
    }

    private static final Map<String, String> INSTRUCTION = Map.of(
            "avx2", "256-bit FMA", "avx512", "512-bit FMA", "avx512_bf16", "vdpbf16ps");

    private static void peakTable(StringBuilder md, Sitting s) {
        md.append("\n| peak: independent chains | 1 thread | 2 threads |\n|---|---:|---:|\n");
        for (CpuLevel level : CpuLevel.values()) {
            String isa = level.isaName();
            String status = s.levels().getOrDefault(isa, "not run");
            List<String> cells = new ArrayList<>(List.of(isa + ": " + INSTRUCTION.get(isa)));
            if (!status.equals("ok")) {
                cells.addAll(List.of(status, ""));
            } else {
                for (String method : List.of("PeakRateBenchmark.oneThread", "PeakRateBenchmark.twoThreads")) {
                    Double rate = s.median(method, Map.of("isa", isa));
                    cells.add(rate != null ? gflops(rate) : noResult(s.failures().get(key(method, Map.of("isa", isa))), "peak"));
                }
            }
            md.append("| ").append(String.join(" | ", cells)).append(" |\n");
        }
    }

    private static String anchorGemmShape(Sitting s) {
        JsonObject r = s.anchor("gemm", "numpy", "fp32", null);
        return r == null ? "(none measured)" : r.get("shape").getAsString();
    }

    private static void anchorTable(StringBuilder md, Sitting s) {
        md.append("\n| anchor | shape | median | best |\n|---|---|---:|---:|\n");
        if (s.anchors() == null) {
            md.append("| no anchors.json: the anchors did not run | | | |\n");
            return;
        }
        for (JsonElement e : s.anchors().getAsJsonArray("results")) {
            JsonObject r = e.getAsJsonObject();
            String what = switch (r.get("kind").getAsString() + " " + r.get("impl").getAsString()) {
                case "gemm numpy" -> "numpy/OpenBLAS " + r.get("dtype").getAsString() + " matmul";
                case "gemm torch" -> "torch " + r.get("dtype").getAsString() + " matmul";
                case "moe_fwd_bwd torch_loop" -> "PyTorch MoE layer fwd+bwd, per-expert loop, " + r.get("dtype").getAsString();
                default -> r.get("kind").getAsString() + " " + r.get("impl").getAsString() + " " + r.get("dtype").getAsString();
            };
            md.append(String.format(Locale.ROOT, "| %s | %s | %s | %s |%n", what, r.get("shape").getAsString(),
                    gflops(r.get("median_gflops").getAsDouble()), gflops(r.get("best_gflops").getAsDouble())));
        }
    }

    /** The rows of one run; the table's header first when the run starts a table. */
    private static void oursRows(StringBuilder md, Sitting s, Run run, boolean gemm, boolean header) {
        String shapeKey = gemm ? "size" : "shape";
        String benchmark = run.benchmark();
        String layerWhat = benchmark.endsWith("trainingStep")
                ? "MoELayer training step (gradients discarded, fwd+bwd, working copies refreshed)" : "MoELayer fwd+bwd";
        if (header) md.append(gemm ? "\n| PanaMoE dense GEMM | dtype | isa | median time | GFLOP/s | vs peak | vs OpenBLAS fp32 | vs torch | target |\n"
                        + "|---|---|---|---:|---:|---:|---:|---:|---|\n"
                        : "\n| PanaMoE " + layerWhat + " | dtype | isa | median time | GFLOP/s | vs peak | vs torch loop | target |\n"
                        + "|---|---|---|---:|---:|---:|---:|---|\n");
        for (Map<String, String> params : run.grid()) {
            String shape = params.get(shapeKey), dtype = params.get("dtype"), isa = params.get("isa");
            md.append("| ").append(shape).append(" | ").append(dtype).append(" | ").append(isa).append(" | ");
            Double seconds = s.median(benchmark, params);
            if (seconds == null) {
                md.append(noResult(s.failures().get(key(benchmark, params)), run.name())).append(gemm ? " | | | | | |\n" : " | | | | |\n");
                continue;
            }
            double flops = gemm ? ResultsTable.gemmFlops(shape) : MoeShape.named(shape).forwardBackwardFlops();
            double rate = flops / seconds * 1e-9;
            String anchorDtype = dtype.equals("f32") ? "fp32" : dtype;
            Double peak = s.peak(dtype.equals("bf16") && isa.equals("avx512_bf16") ? "avx512_bf16"
                    : isa.equals("avx2") ? "avx2" : "avx512");
            double vsPeak = peak == null ? Double.NaN : rate / peak;
            double vsBlas = rate / s.anchorGflops("gemm", "numpy", "fp32", null);
            double vsTorch = rate / (gemm ? s.anchorGflops("gemm", "torch", anchorDtype, null)
                    : s.anchorGflops("moe_fwd_bwd", "torch_loop", anchorDtype, shape));
            md.append(ResultsTable.time(seconds)).append(" | ").append(gflops(rate)).append(" | ")
                    .append(ratio(vsPeak)).append(" | ");
            if (gemm) md.append(dtype.equals("f32") ? ratio(vsBlas) : "").append(" | ");
            md.append(ratio(vsTorch)).append(" | ").append(target(gemm, dtype, isa, vsPeak, vsBlas, vsTorch)).append(" |\n");
        }
    }

    /**
     * The training step in fp32 and in bf16 (TrainingStepBenchmark: forward, backward, clipping,
     * AdamW and, in bf16, the working copies), tokens/s and the bf16 speed-up, against issue 11's
     * 2x on a host with AVX512_BF16.
     */
    private static void stepRows(StringBuilder md, Sitting s, Run run) {
        md.append("\n| training step | fp32 time | bf16 time | fp32 tokens/s | bf16 tokens/s | bf16 / fp32 | target |\n")
                .append("|---|---:|---:|---:|---:|---:|---|\n");
        for (String preset : run.params().get("preset")) {
            Double fp32 = s.median(run.benchmark(), Map.of("preset", preset, "precision", "fp32"));
            Double bf16 = s.median(run.benchmark(), Map.of("preset", preset, "precision", "bf16"));
            if (fp32 == null || bf16 == null) {
                md.append("| ").append(preset).append(" | ").append(noResult(null, run.name())).append(" | | | | | |\n");
                continue;
            }
            double tokens = TrainingStepBenchmark.tokensPerStep(preset);
            double speedup = fp32 / bf16;
            md.append(String.format(Locale.ROOT, "| %s (%d tokens) | %s | %s | %.0f | %.0f | %s | %s |%n", preset,
                    (int) tokens, ResultsTable.time(fp32), ResultsTable.time(bf16), tokens / fp32, tokens / bf16,
                    ratio(speedup), "ok".equals(s.levels().get("avx512_bf16")) ? goal(speedup, 2.0, "fp32") : ""));
        }
    }

    /** Issue 13's targets, for the rows at the level they are set for (f32 at AVX-512, bf16 at AVX512_BF16). */
    static String target(boolean gemm, String dtype, String isa, double vsPeak, double vsBlas, double vsTorch) {
        boolean f32 = dtype.equals("f32") && isa.startsWith("avx512");
        boolean bf16 = dtype.equals("bf16") && isa.equals("avx512_bf16");
        if (gemm && f32) return goal(vsPeak, 0.85, "peak") + "; " + goal(vsBlas, 1.0, "OpenBLAS");
        if (gemm && bf16) return goal(vsPeak, 0.8, "peak") + "; " + goal(vsTorch, 1.0, "torch");
        if (!gemm && f32) return goal(vsTorch, 1.8, "torch");
        if (!gemm && bf16) return goal(vsTorch, 1.1, "torch");
        return "";
    }

    private static String goal(double ratio, double want, String what) {
        String name = String.format(Locale.ROOT, ">= %.2fx %s: ", want, what);
        if (Double.isNaN(ratio)) return name + "n/a";
        return name + (ratio >= want ? "met" : String.format(Locale.ROOT, "%.0f%% short", 100 * (1 - ratio / want)));
    }

    private static String noResult(String failure, String run) {
        return failure != null ? "no result: " + failure : "no result (see jmh-" + run + ".log)";
    }

    private static String gflops(double v) {
        return String.format(Locale.ROOT, "%.1f GFLOP/s", v);
    }

    private static String ratio(double r) {
        return Double.isNaN(r) || Double.isInfinite(r) ? "n/a" : String.format(Locale.ROOT, "%.2fx", r);
    }
}
