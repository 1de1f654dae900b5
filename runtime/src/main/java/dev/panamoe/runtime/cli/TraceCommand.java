package dev.panamoe.runtime.cli;

import dev.panamoe.runtime.report.Plural;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.policy.Balancer;
import dev.panamoe.strategy.trace.LoadTrace;
import dev.panamoe.strategy.trace.SyntheticTrace;
import dev.panamoe.strategy.trace.TraceFiles;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code panamoe trace}: expert-load traces (for now: synthesise one). */
@Command(name = "trace", mixinStandardHelpOptions = true, subcommands = TraceCommand.Synth.class,
        description = "Expert-load traces: per iteration, MoE layer, source rank and micro-batch, the token slots sent"
                + " to each expert. 'trace synth' writes a synthetic one.")
public final class TraceCommand implements Runnable {

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    @Command(name = "synth", mixinStandardHelpOptions = true, sortOptions = false,
            description = "Write a seeded synthetic trace: Zipf-skewed expert popularity that drifts, with occasional"
                    + " swaps of a hot expert's popularity; in SmartMoE's format (a directory of"
                    + " table_iter{I}_rank{R}.log files) or the native one (DIR/trace.jsonl).")
    static final class Synth implements Callable<Integer> {
        @Option(names = "--out", required = true, description = "Directory to write.")
        Path out;
        @Option(names = "--format", defaultValue = "smartmoe",
                description = "smartmoe or native (default: ${DEFAULT-VALUE}).")
        String format;
        @Option(names = "--experts", defaultValue = "64", description = "Experts per MoE layer (default: ${DEFAULT-VALUE}).")
        int experts;
        @Option(names = "--ranks", defaultValue = "16", description = "Source ranks (default: ${DEFAULT-VALUE}).")
        int ranks;
        @Option(names = "--layers", defaultValue = "4", description = "MoE layers (default: ${DEFAULT-VALUE}).")
        int layers;
        @Option(names = "--iters", defaultValue = "500", converter = OptionErrors.AtLeastOne.class,
                description = "Iterations (default: ${DEFAULT-VALUE}).")
        int iterations;
        @Option(names = "--seed", defaultValue = "1", description = "Seed (default: ${DEFAULT-VALUE}).")
        long seed;
        @Option(names = "--micro-batches", defaultValue = "1",
                description = "Micro-batches per iteration and rank (default: ${DEFAULT-VALUE}).")
        int microBatches;
        @Option(names = "--tokens", defaultValue = "8192", converter = OptionErrors.AtLeastOne.class,
                description = "Token slots (tokens x top-k) per rank and micro-batch (default: ${DEFAULT-VALUE}).")
        int tokens;
        @Option(names = "--zipf", defaultValue = "1.0", description = "Zipf exponent of popularity (default: ${DEFAULT-VALUE}).")
        double zipf;
        @Option(names = "--drift", defaultValue = "0.03",
                description = "Per-iteration step of the popularity random walk (default: ${DEFAULT-VALUE}).")
        double drift;
        @Option(names = "--swap", defaultValue = "0.005", converter = OptionErrors.Probability.class,
                description = "Chance per layer and iteration that a hot expert swaps popularity with another"
                        + " (default: ${DEFAULT-VALUE}).")
        double swap;

        @Override
        public Integer call() {
            TraceFiles.Format f = TraceFiles.Format.parse(format);
            LoadTrace trace = SyntheticTrace.generate(new SyntheticTrace.Config(experts, ranks, layers, iterations,
                    microBatches, tokens, zipf, drift, swap, seed));
            TraceFiles.write(trace, out, f);
            System.out.printf(Locale.ROOT, "wrote %s (%s format): %s, %s, %s, %s, %s%n", out,
                    f.name().toLowerCase(Locale.ROOT), Plural.of(iterations, "iteration"), Plural.of(layers, "MoE layer"),
                    Plural.of(ranks, "rank"), Plural.of(microBatches, "micro-batch"), Plural.of(experts, "expert"));
            if (experts % ranks == 0) {
                ExpertPlacement identity = ExpertPlacement.identity(experts, ranks, 0);
                double ratio = Balancer.maxOverMean(identity.deviceLoads(trace.layerLoad(0, 0)));
                System.out.printf(Locale.ROOT, "iteration 0, layer 0, one expert-parallel rank per source: busiest"
                        + " device at %.2fx the mean load%n", ratio);
            }
            return 0;
        }
    }
}
