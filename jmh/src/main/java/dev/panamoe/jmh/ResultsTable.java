package dev.panamoe.jmh;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * Turns a JMH JSON result file (-rf json) into the Markdown table of jmh/README.md: time per
 * operation plus GFLOP/s for compute-bound benchmarks and GB/s for memory-bound ones, from the
 * work each benchmark does (FLOPs count real rows only; bytes count each tensor read or written once).
 *
 * <p>Usage: {@code java -cp jmh/target/benchmarks.jar dev.panamoe.jmh.ResultsTable results.json}
 */
public final class ResultsTable {

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: ResultsTable <jmh-results.json>");
            System.exit(2);
        }
        JsonArray runs = JsonParser.parseString(Files.readString(Path.of(args[0]))).getAsJsonArray();
        System.out.println("| benchmark | shape | time | rate |");
        System.out.println("|---|---|---:|---:|");
        for (JsonElement e : runs) {
            JsonObject run = e.getAsJsonObject();
            String name = shortName(run.get("benchmark").getAsString());
            JsonObject params = run.has("params") ? run.getAsJsonObject("params") : new JsonObject();
            String shape = params.has("shape") ? params.get("shape").getAsString()
                    : params.has("size") ? params.get("size").getAsString()
                    : params.has("preset") ? params.get("preset").getAsString()
                            + (params.has("precision") ? " " + params.get("precision").getAsString() : "") : "";
            JsonObject metric = run.getAsJsonObject("primaryMetric");
            double seconds = toSeconds(metric.get("score").getAsDouble(), metric.get("scoreUnit").getAsString());
            double error = toSeconds(metric.get("scoreError").getAsDouble(), metric.get("scoreUnit").getAsString());
            String spread = Double.isNaN(error) ? "" : " ± " + time(error); // NaN: too few iterations for an error
            System.out.printf(Locale.ROOT, "| %s | %s | %s%s | %s |%n", name, shape, time(seconds), spread,
                    rate(name, shape, seconds));
        }
    }

    /** "Class.method" of JMH's fully qualified benchmark name. */
    static String shortName(String benchmark) {
        return benchmark.substring(benchmark.lastIndexOf('.', benchmark.lastIndexOf('.') - 1) + 1);
    }

    static double toSeconds(double value, String unit) {
        String u = unit.substring(0, unit.indexOf('/'));
        TimeUnit tu = switch (u) {
            case "ns" -> TimeUnit.NANOSECONDS;
            case "us" -> TimeUnit.MICROSECONDS;
            case "ms" -> TimeUnit.MILLISECONDS;
            case "s" -> TimeUnit.SECONDS;
            default -> throw new IllegalArgumentException("scoreUnit: unsupported '" + unit + "'");
        };
        return value * tu.toNanos(1) * 1e-9;
    }

    static String time(double s) {
        if (s >= 1e-3) return String.format(Locale.ROOT, "%.2f ms", s * 1e3);
        if (s >= 1e-6) return String.format(Locale.ROOT, "%.1f us", s * 1e6);
        return String.format(Locale.ROOT, "%.2f ns", s * 1e9);
    }

    /** GFLOP/s or GB/s of one benchmark, or "" for those measured only in time. */
    static String rate(String benchmark, String shape, double seconds) {
        if (benchmark.startsWith("DenseGemmBenchmark")) return gflops(gemmFlops(shape), seconds);
        if (benchmark.equals("TrainingStepBenchmark.step")) {
            // the shape is the preset, then the precision
            return String.format(Locale.ROOT, "%.0f tokens/s", TrainingStepBenchmark.tokensPerStep(shape.split(" ")[0])
                    / seconds);
        }
        if (shape.isEmpty()) return "";
        MoeShape s = MoeShape.named(shape);
        double t = s.tokens(), d = s.hidden(), f = s.ffn(), e = s.experts(), rows = t * s.topK(), f32 = 4;
        return switch (benchmark) {
            case "MoELayerBenchmark.forward" -> gflops(s.forwardFlops(), seconds);
            case "MoELayerBenchmark.forwardBackward" -> gflops(s.forwardBackwardFlops(), seconds);
            case "MoEKernelBenchmark.gateGemm" -> gflops(2 * t * d * e, seconds);
            case "MoEKernelBenchmark.expertUp" -> gflops(2 * rows * d * 2 * f, seconds);
            case "MoEKernelBenchmark.expertDown", "MoEKernelBenchmark.expertDownDataGrad",
                    "MoEKernelBenchmark.expertDownWeightGrad" -> gflops(2 * rows * f * d, seconds);
            case "MoEKernelBenchmark.permute" -> gbps(2 * rows * d * f32, seconds);
            case "MoEKernelBenchmark.permuteBackward", "MoEKernelBenchmark.combine" ->
                    gbps((rows + t) * d * f32, seconds);
            case "MoEKernelBenchmark.combineBackward" -> gbps((t + 2 * rows) * d * f32, seconds);
            case "MoEKernelBenchmark.swiglu" -> gbps(3 * rows * f * f32, seconds);
            case "MoEKernelBenchmark.swigluBackward" -> gbps(5 * rows * f * f32, seconds);
            case "MoEKernelBenchmark.router", "MoEKernelBenchmark.routerBackward" -> gbps(2 * t * e * f32, seconds);
            default -> "";
        };
    }

    /** 2 * m * k * n of DenseGemmBenchmark's size parameter "m x k x n". */
    static double gemmFlops(String size) {
        String[] mkn = size.split("x");
        return 2.0 * Double.parseDouble(mkn[0]) * Double.parseDouble(mkn[1]) * Double.parseDouble(mkn[2]);
    }

    private static String gflops(double flops, double seconds) {
        return String.format(Locale.ROOT, "%.1f GFLOP/s", flops / seconds * 1e-9);
    }

    private static String gbps(double bytes, double seconds) {
        return String.format(Locale.ROOT, "%.1f GB/s", bytes / seconds * 1e-9);
    }
}
