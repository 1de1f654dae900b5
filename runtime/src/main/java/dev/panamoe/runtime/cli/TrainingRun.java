package dev.panamoe.runtime.cli;

import dev.panamoe.ops.Backend;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.Worlds;
import dev.panamoe.runtime.data.Corpus;
import dev.panamoe.runtime.data.LossFloor;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.data.TextCorpus;
import dev.panamoe.runtime.data.Tokenizer;
import dev.panamoe.runtime.model.Generator;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.parallel.CheckpointShards;
import dev.panamoe.runtime.parallel.PlacementController;
import dev.panamoe.runtime.parallel.ProcessGroups;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.OperatorTimer;
import dev.panamoe.runtime.report.Plural;
import dev.panamoe.runtime.report.ProgressDisplay;
import dev.panamoe.runtime.report.ReportData;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.report.TrainingReport;
import dev.panamoe.runtime.train.InitialWeights;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import dev.panamoe.strategy.policy.PlacementPolicy;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine;

/**
 * What {@code train} and {@code demo} share: build the model, train with a progress display,
 * write the report, print a summary. For a synthetic corpus the summary ends with the lines
 * {@code unigram loss: X}, {@code floor: X}, {@code final val loss: X}, {@code gap closed: N.N%}.
 */
final class TrainingRun {

    private static final CommandLine.Model.CommandSpec TRAIN_OPTIONS =
            CommandLine.Model.CommandSpec.forAnnotatedObject(new TrainCommand());

    private final PrintStream out;
    private final String title;
    private final GptMoeConfig modelConfig;
    private final Corpus corpus;
    private final TrainingConfig config;
    /** What each checkpoint records of how the run was started (the command's settings). */
    private Map<String, String> settings = Map.of();
    /** A safetensors file of global tensors to start from, or null. */
    private Path initFrom;
    /** What the run trains in, auto resolved on the backend's device; set by execute. */
    private Precision.Resolved precision;

    TrainingRun(PrintStream out, String title, GptMoeConfig modelConfig, Corpus corpus, TrainingConfig config) {
        this.out = out;
        this.title = title;
        this.modelConfig = modelConfig;
        this.corpus = corpus;
        this.config = config;
    }

    /** Records settings in every checkpoint's manifest, for a later --resume. */
    TrainingRun settings(Map<String, String> runSettings) {
        this.settings = runSettings;
        return this;
    }

    /** Starts from the weights of a safetensors file (of 'checkpoint export') instead of the seed's. */
    TrainingRun initFrom(Path file) {
        this.initFrom = file;
        return this;
    }

    /**
     * Trains on a single device on the backend (from the checkpoint when {@code resume});
     * {@code threads} sets the CPU kernels' threads (null: the library's default).
     */
    void execute(Backend backend, boolean resume, Integer threads) {
        execute(backend, null, null, resume, threads, null);
    }

    /**
     * Trains on a single device when plan is null, else on a world of plan.world() ranks: threads
     * of this JVM, or this process's rank when started by mpirun ({@link Worlds}), under the
     * {@code --placement} policy. Each rank holds its part of the {@link GptMoeModel} and runs a
     * {@link Trainer}; rank 0 alone prints, shows progress and writes the metrics and the report;
     * each rank writes (and on {@code resume} reads) its own checkpoint file. A rank that fails
     * stops every rank within timeout and the run fails with its error.
     */
    void execute(Backend backend, ParallelPlan plan, Duration timeout, boolean resume, Integer threads,
            String placement) {
        if (threads != null) {
            backend.setNumThreads(threads);
        }
        Baselines baselines = Baselines.of(corpus);
        precision = config.precision().resolve(backend.device());
        long start = System.nanoTime();
        Finished done = plan == null ? trainRank(backend, null, null, null, null, resume)
                : Worlds.run(plan.world(), timeout, comm -> trainRank(backend, plan, timeout, comm, placement, resume))
                        .getFirst();
        if (done == null) {
            return; // a rank other than 0 of an mpirun job
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        List<StepMetrics> steps = allSteps(done.ran());
        report(steps, baselines, done.expertSourceCounts(), done.operatorTimes());
        summary(done.ran(), done.step(), steps, seconds, baselines);
    }

    /** What rank 0 reports of its run: the steps it ran, its step at the end, its evaluation's sources and its operator times. */
    private record Finished(List<StepMetrics> ran, int step, long[][][] expertSourceCounts,
            List<OperatorTimer.Entry> operatorTimes) {
    }

    /** One rank's run (comm null: the single device); returns what it finished with on rank 0, null elsewhere. */
    private Finished trainRank(Backend backend, ParallelPlan plan, Duration timeout, Communicator comm, String placement,
            boolean resume) {
        boolean single = comm == null;
        boolean lead = single || comm.rank() == 0;
        if (lead) {
            header(backend);
            if (!single) {
                out.printf(Locale.ROOT, "parallel: %s (%s), plan %s, collective timeout %s s%n",
                        Plural.of(plan.world(), "rank"), comm.backendName(), plan, timeout.toMillis() / 1000.0);
            }
        }
        PlacementPolicy policy = single ? null : PlacementController.policy(placement, modelConfig, plan, config);
        try (ProcessGroups groups = single ? null : new ProcessGroups(new RankLayout(plan), comm);
                GptMoeModel model = single ? new GptMoeModel(backend, modelConfig, config.seed(), precision.dtype())
                        : new GptMoeModel(backend, modelConfig, config.seed(), groups, policy.initial(),
                                precision.dtype());
                Trainer trainer = new Trainer(model, corpus, config)) {
            PlacementController placer = single ? null : trainer.usePlacement(policy);
            if (config.checkpointDir() != null) {
                trainer.checkpoints().settings(settings);
            }
            if (initFrom != null) {
                // each rank its slices; a single device holds the whole model, so a tensor it lacks is refused too
                InitialWeights.load(initFrom, model.parameters(), CheckpointShards.of(model), single);
                model.refreshWorkingCopies();
                if (lead) {
                    out.println("initialised from " + initFrom + (single ? "" : " (each rank its slices)"));
                }
            }
            if (resume) {
                String changed = trainer.resume();
                if (lead) {
                    out.println("resumed from " + config.checkpointDir() + " at step " + trainer.step()
                            + (!changed.isEmpty() ? ": " + changed : single ? "" : " (every rank's file of that step)"));
                }
            }
            if (lead && placer != null) {
                out.println("placement: " + placer.policy().name() + "; "
                        + PlacementController.costModelDescription(plan));
            }
            try (ProgressDisplay progress = lead ? ProgressDisplay.open(config.steps(), trainer.step()) : null) {
                trainer.run(!lead ? m -> { } : m -> {
                    progress.update(m);
                    if (single && m.evaluated() && corpus instanceof TextCorpus text) {
                        out.println(sample(model, text.tokenizer(), m.step()));
                    }
                });
            }
            if (lead && placer != null) {
                out.println("placement: " + Plural.of(placer.changes(), "layer placement change") + ", "
                        + Plural.of(placer.movedSlots(), "slot") + " moved (" + placer.policy().name() + ")");
            }
            return lead ? new Finished(trainer.history(), trainer.step(), trainer.expertSourceCounts(),
                    trainer.timer().entries()) : null;
        }
    }

    /** Tokens in the sample printed at each evaluation of a text run, as llm.c and nanoGPT print one. */
    static final int SAMPLE_TOKENS = 48;

    /**
     * A short continuation of a newline, drawn with the run's seed at temperature 1 among the 40
     * most likely tokens (so the same run prints the same samples), on one line: newlines as "\\n".
     */
    private String sample(GptMoeModel model, Tokenizer tokenizer, long step) {
        try (Generator generator = new Generator(model)) {
            int[] drawn = generator.generate(tokenizer.encode("\n"), SAMPLE_TOKENS,
                    new Generator.Sampling(1.0, 40, config.seed()), t -> { });
            return "sample at step " + step + ": " + tokenizer.decode(drawn).replace("\n", "\\n");
        }
    }

    private void header(Backend backend) {
        out.println("model:    " + modelConfig.describe());
        out.println("data:     " + corpus.describe());
        out.printf(Locale.ROOT, "training: %s of %d x %d tokens in %s, lr %s -> %s after %s, weight decay %s,"
                        + " clip %s, seed %d, %s%n", Plural.of(config.steps(), "step"), config.batch(), config.seq(),
                Plural.of(config.microBatches(), "micro-batch"), config.lr(), config.minLr(),
                Plural.of(config.warmup(), "warm-up step"), config.weightDecay(), config.clipNorm(), config.seed(),
                backend.device().isCpu() ? Plural.of(backend.numThreads(), "thread") : "on " + backend.device());
        out.println("precision: " + precision + (precision.precision() == Precision.BF16
                ? "; bf16 weights and activations (f32 masters, gradients and moments; router, softmaxes, norm "
                        + "statistics and loss in f32)" : ""));
        if (config.gradReduce() == Precision.BF16) {
            out.println("gradient reduce: " + (config.reducesGradientsInBf16(precision)
                    ? "bf16 (the sums over data-parallel replicas send bf16 gradients and add them in f32)"
                    : "fp32 (bf16 was asked for, but this run trains in fp32)"));
        }
        if (config.metrics() != null) {
            createParent(config.metrics());
        }
    }

    private void report(List<StepMetrics> steps, Baselines baselines, long[][][] expertSourceCounts,
            List<OperatorTimer.Entry> operatorTimes) {
        if (config.report() != null && !steps.isEmpty()) {
            Map<String, String> rows = reportConfig();
            StepMetrics evaluated = steps.reversed().stream().filter(StepMetrics::evaluated).findFirst().orElse(null);
            if (!Double.isNaN(baselines.bits(baselines.unigram()))) {
                rows.put("unigram loss, bits per byte",
                        String.format(Locale.ROOT, "%.4f", baselines.bits(baselines.unigram())));
                rows.put("final validation loss, bits per byte", evaluated == null ? "not evaluated"
                        : String.format(Locale.ROOT, "%.4f", baselines.bits(evaluated.valLoss())));
            }
            Path index = TrainingReport.write(config.report(), new ReportData(title, rows, steps,
                    baselines.unigram(), baselines.floor(), expertSourceCounts, operatorTimes));
            out.println("report:   " + index);
        }
    }

    private static void createParent(Path file) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the directory of " + file + ": " + e, e);
        }
    }

    /** The whole run's metrics: the metrics file (which spans a resume) when there is one, else this process's steps. */
    private List<StepMetrics> allSteps(List<StepMetrics> ran) {
        Path file = config.metrics();
        return file != null && Files.exists(file) ? MetricsWriter.read(file) : ran;
    }

    private Map<String, String> reportConfig() {
        Map<String, String> c = new LinkedHashMap<>();
        c.put("model", modelConfig.describe());
        c.put("data", corpus.describe());
        c.put("precision", precision.toString());
        config.toMap().forEach((k, v) -> {
            if (!v.isEmpty()) {
                // Named as the user gives them (--micro-batches), fields that are no option as they are (beta1).
                CommandLine.Model.OptionSpec option = TRAIN_OPTIONS.findOption("--" + OptionErrors.kebab(k));
                c.put(option != null ? option.names()[0] : k, v);
            }
        });
        return c;
    }

    /** ran: the steps this process ran; step: the run's step now; steps: the whole run's (across a resume). */
    private void summary(List<StepMetrics> ran, int step, List<StepMetrics> steps, double seconds,
            Baselines baselines) {
        if (config.metrics() != null) {
            out.println("metrics:  " + config.metrics());
        }
        if (config.checkpointDir() != null) {
            out.println("checkpoint: " + config.checkpointDir() + " (step " + step + ")");
        }
        if (!ran.isEmpty()) {
            double[] rates = ran.stream().mapToDouble(StepMetrics::tokensPerSecond).sorted().toArray();
            out.printf(Locale.ROOT, "trained steps %d to %d in %.1f s (median %.0f tokens/s)%n", ran.getFirst().step(),
                    ran.getLast().step(), seconds, rates[rates.length / 2]);
        }
        if (step < config.steps()) {
            out.println("stopped at step " + step + " of " + config.steps() + "; continue with --checkpoint "
                    + config.checkpointDir() + " --resume");
            return;
        }
        StepMetrics last = steps.isEmpty() ? null : steps.getLast();
        double val = last == null ? Double.NaN : last.valLoss();
        if (!baselines.known()) {
            if (!Double.isNaN(baselines.unigram())) {
                out.printf(Locale.ROOT, "unigram loss: %.4f%s%n", baselines.unigram(),
                        baselines.bitsPerByte(baselines.unigram()));
            }
            out.printf(Locale.ROOT, "final val loss: %.4f%s%n", val, baselines.bitsPerByte(val));
            return;
        }
        out.printf(Locale.ROOT, "unigram loss: %.4f%n", baselines.unigram());
        out.printf(Locale.ROOT, "floor: %.4f%n", baselines.floor());
        out.printf(Locale.ROOT, "final val loss: %.4f%n", val);
        out.println("gap closed: "
                + TrainingReport.gapClosed(LossFloor.gapClosed(baselines.unigram(), baselines.floor(), val)));
    }

    /**
     * Loss of the best unigram model and the loss floor of a synthetic corpus; for text, the
     * validation split's unigram loss, no floor, and its tokens per byte (to give bits per byte);
     * NaN where unknown.
     */
    record Baselines(double unigram, double floor, double tokensPerByte) {
        static Baselines of(Corpus corpus) {
            if (corpus instanceof SyntheticCorpus s) {
                return new Baselines(s.unigramLoss(), s.lossFloor(SyntheticCorpus.DEFAULT_FLOOR_SEQUENCES).nats(),
                        Double.NaN);
            }
            if (corpus instanceof TextCorpus t) {
                return new Baselines(t.unigramLoss(), Double.NaN, t.validationTokensPerByte());
            }
            return new Baselines(Double.NaN, Double.NaN, Double.NaN);
        }

        /** A loss in nats per token of text in bits per byte of it; NaN for other data. */
        double bits(double nats) {
            return nats * tokensPerByte / Math.log(2);
        }

        /** " (B bits per byte)" for a loss in nats per token of text, else "". */
        String bitsPerByte(double nats) {
            double bits = bits(nats);
            return Double.isNaN(bits) ? "" : String.format(Locale.ROOT, " (%.4f bits per byte)", bits);
        }

        boolean known() {
            return !Double.isNaN(floor);
        }
    }
}
