package dev.panamoe.strategy.cost;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.stream.Stream;

/**
 * Measured rates that replace a cluster preset's defaults, read from JMH result files (the
 * {@code -rf json} output in jmh/results/):
 * <ul>
 * <li>GEMM FLOP/s: {@code DenseGemmBenchmark.gemm} with param {@code size = "MxKxN"} (2mnk FLOPs
 * per op), the median over sizes; results with a {@code device} param containing "cuda"
 * calibrate GPU clusters, the others the {@code cpu} cluster (the whole machine);</li>
 * <li>communicator bandwidth: any benchmark whose method name contains "allToAll" or "allReduce"
 * and that has a {@code bytes} param (bytes each rank sends per op), the best over sizes —
 * the in-JVM world's copy bandwidth for the {@code cpu} cluster, the intra-node bandwidth for
 * a GPU cluster when the benchmark's {@code backend} param is "nccl".</li>
 * </ul>
 * Files are read in name order (they are dated), so a later file's result for the same
 * benchmark and params replaces an earlier one. What was used and what was defaulted is in
 * {@link #describe}.
 */
public final class Calibration {
    private final OptionalDouble cpuGemmFlops;
    private final OptionalDouble gpuGemmFlops;
    private final OptionalDouble inJvmBandwidth;
    private final OptionalDouble ncclBandwidth;
    private final List<String> sources;

    private Calibration(OptionalDouble cpuGemmFlops, OptionalDouble gpuGemmFlops, OptionalDouble inJvmBandwidth,
            OptionalDouble ncclBandwidth, List<String> sources) {
        this.cpuGemmFlops = cpuGemmFlops;
        this.gpuGemmFlops = gpuGemmFlops;
        this.inJvmBandwidth = inJvmBandwidth;
        this.ncclBandwidth = ncclBandwidth;
        this.sources = List.copyOf(sources);
    }

    /** No measurements: every preset keeps its defaults. */
    public static Calibration defaults() {
        return new Calibration(OptionalDouble.empty(), OptionalDouble.empty(), OptionalDouble.empty(),
                OptionalDouble.empty(), List.of());
    }

    /** Reads every *.json in dir (none, or no such directory: the defaults). */
    public static Calibration load(Path dir) {
        if (dir == null || !Files.isDirectory(dir)) {
            return defaults();
        }
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.getFileName().toString().endsWith(".json")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException("calibration: cannot list " + dir, e);
        }
        Map<String, Measurement> latest = new LinkedHashMap<>();
        for (Path f : files) {
            for (Measurement m : read(f)) {
                latest.put(m.key(), m);
            }
        }
        List<Measurement> all = List.copyOf(latest.values());
        List<String> sources = new ArrayList<>();
        OptionalDouble cpu = median(all, "gemm", false, sources);
        OptionalDouble gpu = median(all, "gemm", true, sources);
        OptionalDouble jvm = best(all, "in-jvm", sources);
        OptionalDouble nccl = best(all, "nccl", sources);
        return new Calibration(cpu, gpu, jvm, nccl, sources);
    }

    /**
     * The cluster with the measured rates that apply to it; its other settings (overrides
     * included) are kept. The cpu cluster's measurements are of the whole machine, which its
     * ranks share.
     */
    public ClusterSpec apply(ClusterSpec cluster) {
        boolean cpu = cluster.name().startsWith("cpu");
        ClusterSpec c = cluster;
        OptionalDouble flops = cpu ? cpuGemmFlops : gpuGemmFlops;
        OptionalDouble bandwidth = cpu ? inJvmBandwidth : ncclBandwidth;
        int share = cpu ? cluster.gpus() : 1;
        if (flops.isPresent()) {
            c = c.withDeviceFlops(flops.getAsDouble() / share);
        }
        if (bandwidth.isPresent()) {
            c = c.withIntraBandwidth(bandwidth.getAsDouble() / share);
        }
        return c;
    }

    /** Lines saying, for the cluster, which rates were measured (and where) and which are defaults. */
    public List<String> describe(ClusterSpec cluster) {
        boolean cpu = cluster.name().startsWith("cpu");
        List<String> lines = new ArrayList<>();
        lines.add(line("GEMM FLOP/s", cpu ? cpuGemmFlops : gpuGemmFlops, cpu ? "cpu gemm" : "gpu gemm", cluster));
        lines.add(line(cpu ? "in-JVM copy bandwidth" : "intra-node bandwidth", cpu ? inJvmBandwidth : ncclBandwidth,
                cpu ? "in-jvm" : "nccl", cluster));
        lines.add("inter-node bandwidth, latencies, memory: preset " + cluster.name() + " defaults");
        return lines;
    }

    /** Whether any measured rate applies to the cluster. */
    public boolean calibrates(ClusterSpec cluster) {
        return cluster.name().startsWith("cpu") ? cpuGemmFlops.isPresent() || inJvmBandwidth.isPresent()
                : gpuGemmFlops.isPresent() || ncclBandwidth.isPresent();
    }

    private String line(String what, OptionalDouble value, String tag, ClusterSpec cluster) {
        if (value.isEmpty()) {
            return what + ": preset " + cluster.name() + " default (no matching JMH result)";
        }
        String from = sources.stream().filter(s -> s.startsWith(tag + ":")).findFirst().orElse(tag)
                .substring(tag.length() + 1).strip();
        return String.format(Locale.ROOT, "%s: %.4g measured (%s)", what, value.getAsDouble(), from);
    }

    /** One JMH result: benchmark, params, seconds per op, the file. */
    private record Measurement(String benchmark, Map<String, String> params, double secondsPerOp, String file) {
        String key() {
            return benchmark + params;
        }

        String method() {
            return benchmark.substring(benchmark.lastIndexOf('.') + 1);
        }
    }

    private static List<Measurement> read(Path file) {
        JsonArray results;
        try {
            JsonElement root = JsonParser.parseString(Files.readString(file));
            if (!root.isJsonArray()) {
                return List.of(); // not a JMH result file
            }
            results = root.getAsJsonArray();
        } catch (IOException e) {
            throw new UncheckedIOException("calibration: cannot read " + file, e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("calibration: " + file + " is not JMH JSON: " + e.getMessage(), e);
        }
        List<Measurement> out = new ArrayList<>();
        for (JsonElement el : results) {
            JsonObject r = el.getAsJsonObject();
            if (!r.has("benchmark") || !r.has("primaryMetric")) {
                continue;
            }
            Map<String, String> params = new LinkedHashMap<>();
            if (r.has("params")) {
                r.getAsJsonObject("params").entrySet().forEach(e -> params.put(e.getKey(), e.getValue().getAsString()));
            }
            JsonObject metric = r.getAsJsonObject("primaryMetric");
            double seconds = secondsPerOp(metric.get("score").getAsDouble(), metric.get("scoreUnit").getAsString());
            if (seconds > 0) {
                out.add(new Measurement(r.get("benchmark").getAsString(), params, seconds,
                        file.getFileName().toString()));
            }
        }
        return out;
    }

    private static double secondsPerOp(double score, String unit) {
        return switch (unit) {
            case "s/op" -> score;
            case "ms/op" -> score * 1e-3;
            case "us/op" -> score * 1e-6;
            case "ns/op" -> score * 1e-9;
            case "ops/s" -> score > 0 ? 1 / score : -1;
            case "ops/ms" -> score > 0 ? 1e-3 / score : -1;
            default -> -1; // a unit we do not convert: not used
        };
    }

    /** Median GEMM rate of DenseGemmBenchmark.gemm on the CPU or on a GPU. */
    private static OptionalDouble median(List<Measurement> all, String tag, boolean gpu, List<String> sources) {
        List<Double> rates = new ArrayList<>();
        List<String> files = new ArrayList<>();
        for (Measurement m : all) {
            String size = m.params().get("size");
            boolean onGpu = m.params().getOrDefault("device", "cpu").toLowerCase(Locale.ROOT).contains("cuda");
            if (!m.benchmark().endsWith("DenseGemmBenchmark.gemm") || size == null || onGpu != gpu) {
                continue;
            }
            String[] mkn = size.split("x");
            if (mkn.length != 3) {
                continue;
            }
            double flops = 2.0 * Double.parseDouble(mkn[0]) * Double.parseDouble(mkn[1]) * Double.parseDouble(mkn[2]);
            rates.add(flops / m.secondsPerOp());
            if (!files.contains(m.file())) {
                files.add(m.file());
            }
        }
        if (rates.isEmpty()) {
            return OptionalDouble.empty();
        }
        double[] r = rates.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        double median = r.length % 2 == 1 ? r[r.length / 2] : (r[r.length / 2 - 1] + r[r.length / 2]) / 2;
        sources.add((gpu ? "gpu " : "cpu ") + tag + ": DenseGemmBenchmark.gemm, median of " + r.length + " sizes "
                + Arrays.toString(Arrays.stream(r).map(x -> Math.round(x / 1e8) / 10.0).toArray()) + " GFLOP/s, "
                + String.join(", ", files));
        return OptionalDouble.of(median);
    }

    /** Best allToAll / allReduce bandwidth of the in-JVM (backend absent or "injvm") or NCCL communicator. */
    private static OptionalDouble best(List<Measurement> all, String tag, List<String> sources) {
        double best = 0;
        String from = null;
        for (Measurement m : all) {
            String method = m.method().toLowerCase(Locale.ROOT);
            String bytes = m.params().get("bytes");
            String backend = m.params().getOrDefault("backend", "injvm").toLowerCase(Locale.ROOT).replace("-", "");
            boolean wanted = tag.equals("nccl") ? backend.equals("nccl") : backend.equals("injvm");
            if (!(method.contains("alltoall") || method.contains("allreduce")) || bytes == null || !wanted) {
                continue;
            }
            double rate = Double.parseDouble(bytes) / m.secondsPerOp();
            if (rate > best) {
                best = rate;
                from = m.benchmark() + " " + m.params() + ", " + m.file();
            }
        }
        if (from == null) {
            return OptionalDouble.empty();
        }
        sources.add(tag + ": " + from);
        return OptionalDouble.of(best);
    }

    @Override
    public String toString() {
        return "Calibration" + sources;
    }
}
