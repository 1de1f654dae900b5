package dev.panamoe.runtime.cli;

import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.report.Plural;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PolicyContext;
import dev.panamoe.strategy.simulate.SimulationReport;
import dev.panamoe.strategy.simulate.Simulator;
import dev.panamoe.strategy.trace.LoadTrace;
import dev.panamoe.strategy.trace.TraceFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code panamoe simulate}: replays a load trace through the cost model under each placement policy. */
@Command(name = "simulate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Replay an expert-load trace through the cost model under placement policies: static,"
                + " greedy[:X] (SmartMoE's dyn.X), replica[:R] (Megatron-Core's per-step replica planner, R replica"
                + " slots per device) and smart[:R] (ours: cost-weighed moves and replicas, adaptive period).",
            "Prints per policy the mean predicted iteration time, its speedup over static, the busiest/mean device"
                + " load and the placement changes; --json and --png write them with every iteration's time."})
public final class SimulateCommand implements Callable<Integer> {

    @Option(names = "--trace", required = true,
            description = "A directory of table_iter{I}_rank{R}.log files (SmartMoE's format), or a native trace"
                    + " (trace.jsonl or its directory).")
    Path trace;

    @Option(names = "--cluster", defaultValue = "h100-nvlink-ib",
            description = "Cluster preset (h100-nvlink-ib, a100-nvlink-ib, v100-pcie-eth, cpu), optionally with"
                    + " overrides (h100-nvlink-ib:inter-bw=25e9), or a JSON object (default: ${DEFAULT-VALUE}).")
    String cluster;

    @Option(names = "--gpus", description = "Devices (default: the trace's source ranks).")
    Integer gpus;

    @Option(names = "--gpus-per-node", defaultValue = "8", description = "Devices per node (default: ${DEFAULT-VALUE}).")
    int gpusPerNode;

    @Option(names = "--model", defaultValue = "gpt-moe-l16-h1536", completionCandidates = TrainCommand.Presets.class,
            description = "Model preset (${COMPLETION-CANDIDATES}) or one"
                    + " MoE layer alone, moe-layer:hidden=H,ffn=F,tokens=T[,top-k=2][,gated=false] (T tokens per"
                    + " device); the expert count is the trace's (default: ${DEFAULT-VALUE}).")
    String model;

    @Option(names = "--layer", paramLabel = "L",
            description = "Replay only the trace's MoE layer L (the L of its \"L:[[...]]\" lines): every MoE layer"
                    + " of the model sees that layer's load (default: the model's layer l replays the trace's"
                    + " layer l modulo their number).")
    Integer layer;

    @Option(names = "--plan", description = "Parallel plan, e.g. \"pp=2,ep=8\" (default: ep = all devices).")
    String plan;

    @Option(names = "--micro-batch",
            description = "Sequences per rank per micro-batch (default: 4; 1 for a moe-layer model).")
    Integer microBatch;

    @Option(names = "--micro-batches", defaultValue = "1",
            description = "Micro-batches per step (default: ${DEFAULT-VALUE}).")
    int microBatches;

    @Option(names = "--policy", defaultValue = "static,greedy:10,greedy:100,replica,smart",
            description = "Comma-separated policies (default: ${DEFAULT-VALUE}); static is always run as the baseline.")
    String policies;

    @Option(names = "--window", defaultValue = "100",
            description = "Iterations the load tracker keeps (default: ${DEFAULT-VALUE}).")
    int window;

    @Option(names = "--json", description = "Write the results as JSON to this file.")
    Path json;

    @Option(names = "--png", description = "Write the per-iteration time chart to this PNG file.")
    Path png;

    @Override
    public Integer call() {
        LoadTrace loaded = TraceFiles.read(trace);
        if (layer != null) {
            loaded = loaded.onlyLayer(layer);
        }
        int devices = gpus != null ? gpus : loaded.ranks();
        boolean oneLayer = model.startsWith(ModelShape.MOE_LAYER);
        ModelShape shape = oneLayer ? ModelShape.parseMoeLayer(model, loaded.experts())
                : GptMoeConfig.preset(model).toBuilder().experts(loaded.experts()).build().shape(model);
        int microBatch = this.microBatch != null ? this.microBatch : oneLayer ? 1 : 4;
        ClusterSpec spec = ClusterSpec.parse(cluster, devices, Math.min(gpusPerNode, devices));
        ParallelPlan parallel = plan != null ? ParallelPlan.parse(plan, devices) : new ParallelPlan(1, 1, devices, 1);
        PolicyContext context = new PolicyContext(new CostModel(shape, spec),
                new Skeleton(parallel, microBatch, microBatches, Skeleton.DROPLESS));
        System.out.printf(Locale.ROOT, "trace:   %s: %s, %s, %s, %s, %s%n", trace,
                Plural.of(loaded.iterations(), "iteration"), Plural.of(loaded.layers(), "MoE layer"),
                Plural.of(loaded.ranks(), "rank"), Plural.of(loaded.microBatches(), "micro-batch"),
                Plural.of(loaded.experts(), "expert"));
        System.out.printf(Locale.ROOT, "model:   %s with %s (%s %s the trace's %s)%n", model,
                Plural.of(shape.experts(), "expert"), Plural.of(shape.moeLayers(), "MoE layer"),
                shape.moeLayers() == 1 ? "replays" : "replay",
                layer != null ? "layer " + layer : Plural.of(loaded.layers(), "layer"));
        System.out.println("cluster: " + spec.describe());
        System.out.printf(Locale.ROOT, "plan:    %s, micro-batch %d x %d, dropless%n%n", parallel, microBatch,
                microBatches);
        List<String> specs = Arrays.stream(policies.split(",")).map(String::strip).toList();
        SimulationReport report = new Simulator(context, window).run(loaded, specs);
        System.out.print(report.table());
        if (json != null) {
            write(json, report.toJson().getBytes(StandardCharsets.UTF_8));
            System.out.println("wrote " + json);
        }
        if (png != null) {
            write(png, SimulationChart.png(report, String.format(Locale.ROOT, "%s, %s, %d devices (%s)", model,
                    spec.name(), devices, parallel)));
            System.out.println("wrote " + png);
        }
        return 0;
    }

    private static void write(Path file, byte[] bytes) {
        try {
            if (file.toAbsolutePath().getParent() != null) {
                Files.createDirectories(file.toAbsolutePath().getParent());
            }
            Files.write(file, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
