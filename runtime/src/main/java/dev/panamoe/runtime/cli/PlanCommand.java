package dev.panamoe.runtime.cli;

import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.strategy.cost.Calibration;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.ExpertLoad;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.search.LoadSamples;
import dev.panamoe.strategy.search.PlanPool;
import dev.panamoe.strategy.search.PlanSearch;
import dev.panamoe.strategy.trace.TraceFiles;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The offline phase: searches every parallel plan for a model on a cluster and prints the pool. */
@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "Search every feasible parallel plan (pp, tp, ep, edp, micro-batch, capacity) for a model on a"
                + " cluster with the data-sensitive cost model; print the pool of the best plans and why the others"
                + " lost, and write it as JSON (for train --plan-pool).")
public final class PlanCommand implements Callable<Integer> {

    @Option(names = "--gpus", required = true, converter = OptionErrors.AtLeastOne.class,
            description = "Devices in the cluster.")
    int gpus;

    @Option(names = "--gpus-per-node", defaultValue = "8", converter = OptionErrors.AtLeastOne.class,
            description = "Devices per node (default: ${DEFAULT-VALUE}).")
    int gpusPerNode;

    @Option(names = "--model", defaultValue = "gpt-moe-l16-h2560",
            description = "Model preset: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).",
            completionCandidates = Presets.class)
    String model;

    @Option(names = "--cluster", defaultValue = "h100-nvlink-ib",
            description = "Cluster preset (h100-nvlink-ib, a100-nvlink-ib, v100-pcie-eth, cpu), optionally with"
                    + " overrides (h100-nvlink-ib:inter-bw=25e9,memory-gib=40), a JSON object, or a .json file"
                    + " (default: ${DEFAULT-VALUE}).")
    String cluster;

    @Option(names = "--batch", converter = OptionErrors.AtLeastOne.class,
            description = "Global batch in sequences per step (default: 2 x gpus).")
    Integer batch;

    @Option(names = "--capacity", defaultValue = "dropless", split = ",",
            description = "Capacity factors to consider, comma-separated: dropless or numbers (default: ${DEFAULT-VALUE}).")
    List<String> capacities;

    @Option(names = "--trace", description = "Score plans under this load trace (directory of table_iter files or a"
            + " native trace) instead of Zipf samples.")
    Path trace;

    @Option(names = "--samples", defaultValue = "2", converter = OptionErrors.AtLeastOne.class,
            description = "Load samples per plan (default: ${DEFAULT-VALUE}).")
    int samples;

    @Option(names = "--zipf", defaultValue = "1.0", converter = OptionErrors.NonNegative.class,
            description = "Zipf exponent of the sampled expert popularity without --trace (default: ${DEFAULT-VALUE}).")
    double zipf;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the Zipf samples (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--pool-size", defaultValue = "8", converter = OptionErrors.AtLeastOne.class,
            description = "Plans to keep (default: ${DEFAULT-VALUE}).")
    int poolSize;

    @Option(names = "--calibration", defaultValue = "jmh/results",
            description = "Directory of JMH JSON results to calibrate the cluster from (default: ${DEFAULT-VALUE}).")
    Path calibrationDir;

    @Option(names = "--json", paramLabel = "FILE",
            description = "Write the pool and every rejection as JSON to FILE, for train --plan-pool (default: not"
                    + " written).")
    Path json;

    static final class Presets extends ArrayList<String> {
        Presets() {
            super(GptMoeConfig.presetNames());
        }
    }

    @Override
    public Integer call() {
        int globalBatch = batch != null ? batch : 2 * gpus;
        ModelShape shape = GptMoeConfig.preset(model).shape(model);
        Calibration calibration = Calibration.load(calibrationDir);
        ClusterSpec spec = calibration.apply(ClusterSpec.parse(clusterText(), gpus, Math.min(gpusPerNode, gpus)));
        List<Double> factors = capacities.stream().map(Skeleton::parseCapacity).toList();
        List<ExpertLoad> loads;
        String loadsName;
        if (trace != null) {
            loads = LoadSamples.fromTrace(TraceFiles.read(trace), shape, samples);
            loadsName = loads.size() + " iterations of trace " + trace;
        } else {
            loads = LoadSamples.zipf(shape, Math.min(gpus, 64), samples, zipf, seed);
            loadsName = String.format(Locale.ROOT, "%d Zipf samples (exponent %.2f, seed %d)", samples, zipf, seed);
        }
        long start = System.nanoTime();
        PlanPool pool = PlanSearch.search(new CostModel(shape, spec), calibration,
                new PlanSearch.Spec(globalBatch, factors, poolSize, loads, loadsName));
        double seconds = (System.nanoTime() - start) / 1e9;
        print(System.out, pool, seconds);
        if (json != null) {
            pool.write(json);
            System.out.println("wrote the pool to " + json.toAbsolutePath());
        }
        return pool.pool().isEmpty() ? 1 : 0;
    }

    private String clusterText() {
        if (cluster.endsWith(".json") && Files.isRegularFile(Path.of(cluster))) {
            try {
                return Files.readString(Path.of(cluster));
            } catch (IOException e) {
                throw new UncheckedIOException("--cluster: cannot read " + cluster, e);
            }
        }
        return cluster;
    }

    static void print(PrintStream out, PlanPool pool, double seconds) {
        out.println("model:   " + pool.model());
        out.println("cluster: " + pool.cluster());
        pool.calibration().forEach(line -> out.println("  " + line));
        out.println("batch:   " + pool.globalBatch() + " sequences per step; loads: " + pool.loads());
        out.printf(Locale.ROOT, "searched %d plan skeletons in %.2f s: %d pooled, %d rejected%n%n", pool.considered(),
                seconds, pool.pool().size(), pool.rejected().size());
        if (pool.pool().isEmpty()) {
            out.println("no feasible plan");
        } else {
            out.printf("%3s  %-24s %7s %9s %10s %10s %8s %8s  %s%n", "#", "plan", "micro", "capacity", "step ms",
                    "worst ms", "mem GiB", "max/mean", "largest terms");
            int i = 1;
            for (PlanPool.Entry e : pool.pool()) {
                out.printf(Locale.ROOT, "%3d  %-24s %7s %9s %10.2f %10.2f %8.1f %8.2f  %s%n", i++, e.plan(),
                        e.microBatch() + "x" + e.microBatches(), e.capacity(), e.stepSeconds() * 1e3,
                        e.worstStepSeconds() * 1e3, e.memoryBytes() / GIB, e.maxOverMeanLoad(), largestTerms(e));
            }
        }
        out.println();
        out.println("why the others lost (the best of each reason; all are in the JSON):");
        Map<PlanPool.Reason, PlanPool.Rejection> best = new EnumMap<>(PlanPool.Reason.class);
        Map<PlanPool.Reason, Integer> count = new EnumMap<>(PlanPool.Reason.class);
        for (PlanPool.Rejection r : pool.rejected()) {
            count.merge(r.reason(), 1, Integer::sum);
            // unscored reasons (no slowerPercent) keep their first plan
            PlanPool.Rejection b = best.get(r.reason());
            if (b == null || r.slowerPercent() != null && r.slowerPercent() < b.slowerPercent()) {
                best.put(r.reason(), r);
            }
        }
        for (Map.Entry<PlanPool.Reason, PlanPool.Rejection> e : best.entrySet()) {
            out.printf("  %-12s %5d  %-40s %s%n", e.getKey().name().toLowerCase(Locale.ROOT), count.get(e.getKey()),
                    e.getValue().skeleton(), e.getValue().detail());
        }
    }

    /** The two largest time terms, as shares of the step. */
    private static String largestTerms(PlanPool.Entry e) {
        return e.terms().entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue().reversed()).limit(2)
                .map(t -> String.format(Locale.ROOT, "%s %.0f%%", t.getKey(), 100 * t.getValue() / e.stepSeconds()))
                .reduce((a, b) -> a + ", " + b).orElse("");
    }

    private static final double GIB = 1024.0 * 1024 * 1024;
}
