package dev.panamoe.runtime.cli;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.BackendUnavailableException;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.runtime.comm.Worlds;
import dev.panamoe.runtime.data.ByteCorpus;
import dev.panamoe.runtime.data.Corpus;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.parallel.ParallelTrainer;
import dev.panamoe.runtime.parallel.PlacementController;
import dev.panamoe.runtime.train.Checkpoint;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.search.PlanPool;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code panamoe train}: trains a GPT-MoE preset, with overrides, on the synthetic corpus or a file's bytes. */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        defaultValueProvider = TrainCommand.Defaults.class,
        description = {"Train a GPT-MoE model on the CPU or a CUDA device: on the synthetic corpus of hidden Markov "
                + "sources (whose loss floor is known), or on the bytes of --data FILE.",
            "Metrics go to --metrics (JSON lines), charts and an HTML page to --report, the state to --checkpoint."})
public final class TrainCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    // ---- model ----
    @Option(names = "--preset", defaultValue = "tiny", completionCandidates = Presets.class,
            description = "Model shape: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    String preset;
    @Option(names = "--layers", description = "Transformer blocks (default: the preset's).")
    Integer layers;
    @Option(names = "--hidden", description = "Model width (default: the preset's).")
    Integer hidden;
    @Option(names = "--heads", description = "Attention heads (default: the preset's).")
    Integer heads;
    @Option(names = "--experts", description = "Experts per MoE layer (default: the preset's).")
    Integer experts;
    @Option(names = "--top-k", description = "Experts per token (default: the preset's).")
    Integer topK;
    @Option(names = "--moe-every", description = "Every N-th block has an MoE FFN (default: the preset's).")
    Integer moeEvery;
    @Option(names = "--capacity-factor", paramLabel = "F|dropless", converter = CapacityFactor.class,
            description = "Expert capacity factor, or 'dropless' (default: the preset's).")
    Double capacityFactor;

    // ---- data ----
    @Option(names = "--data", paramLabel = "FILE",
            description = "Train on the bytes of FILE (last 10%% held out); default: the synthetic corpus.")
    Path data;
    @Option(names = "--seq", description = "Tokens per sequence (default: the preset's maximum).")
    Integer seq;

    // ---- training ----
    @Option(names = "--steps", description = "Optimizer steps (default: ${DEFAULT-VALUE}).")
    int steps;
    @Option(names = "--batch", description = "Sequences per step (default: ${DEFAULT-VALUE}).")
    int batch;
    @Option(names = "--micro-batches", description = "Gradient accumulation: passes per step (default: ${DEFAULT-VALUE}).")
    int microBatches;
    @Option(names = "--lr", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    float lr;
    @Option(names = "--min-lr", description = "Final learning rate of the cosine decay (default: ${DEFAULT-VALUE}).")
    float minLr;
    @Option(names = "--warmup", description = "Linear warm-up steps (default: a tenth of --steps).")
    Integer warmup;
    @Option(names = "--weight-decay", description = "AdamW weight decay (default: ${DEFAULT-VALUE}).")
    float weightDecay;
    @Option(names = "--clip-norm", description = "Global gradient norm clip, 0 = off (default: ${DEFAULT-VALUE}).")
    float clipNorm;
    @Option(names = "--seed", description = "Seed of the initialisation and of byte sampling (default: ${DEFAULT-VALUE}).")
    long seed;
    @Option(names = "--eval-every", description = "Evaluate every N steps and at the end (default: ${DEFAULT-VALUE}).")
    int evalEvery;
    @Option(names = "--eval-batches", description = "Held-out micro-batches per evaluation (default: ${DEFAULT-VALUE}).")
    int evalBatches;
    @Option(names = "--threads", converter = OptionErrors.AtLeastOne.class,
            description = "CPU threads of the kernels (default: the library's).")
    Integer threads;
    @Option(names = "--device", paramLabel = "cpu|cuda[:N]", defaultValue = "cpu",
            description = "Where the model lives and the kernels run (default: ${DEFAULT-VALUE}).")
    String device;

    // ---- outputs and checkpoints ----
    @Option(names = "--metrics", paramLabel = "FILE", description = "Write one JSON line of metrics per step.")
    Path metrics;
    @Option(names = "--report", paramLabel = "DIR", description = "Write the report (index.html and PNG charts).")
    Path report;
    @Option(names = {"--checkpoint", "--checkpoint-dir"}, paramLabel = "DIR",
            description = "Keep the training state in DIR/" + Checkpoint.FILE_NAME + ".")
    Path checkpointDir;
    @Option(names = "--checkpoint-every", paramLabel = "N",
            description = "Checkpoint every N steps, besides the end (default: ${DEFAULT-VALUE}, only the end).")
    int checkpointEvery;
    @Option(names = "--resume", description = "Continue the run saved in --checkpoint DIR.")
    boolean resume;
    @Option(names = "--stop-at", paramLabel = "STEP",
            description = "End after STEP with a checkpoint, keeping the LR schedule of --steps (resume later).")
    Integer stopAt;

    // ---- parallelism ----
    @Option(names = "--world", paramLabel = "N",
            description = "Train on N ranks: threads of this JVM, or under mpirun one per process (default: 1, or "
                    + "mpirun's process count).")
    Integer world;
    @Option(names = "--plan", paramLabel = "SPEC",
            description = "Parallel plan, e.g. pp=2,dp=2,ep=2 (keys pp, tp, ep, dp; dp fills the world when not "
                    + "given; default: data parallel over all ranks).")
    String plan;
    @Option(names = "--placement", paramLabel = "POLICY", defaultValue = "static",
            description = "Expert placement while training: static, greedy[:X] (SmartMoE's, every X steps, default "
                    + "10), replica[:R] or smart[:R] (R replica slots per device); changes move experts with their "
                    + "optimizer state between steps (default: ${DEFAULT-VALUE}).")
    String placement;
    @Option(names = "--plan-pool", paramLabel = "FILE",
            description = "Train with the fastest plan of a pool written by 'plan --json FILE' that fits the run (its "
                    + "ranks, preset and batch); its micro-batches and capacity too, unless given.")
    Path planPool;

    /** How long a rank waits in a collective before the run fails (a failed rank stops the others sooner). */
    static final Duration COLLECTIVE_TIMEOUT = Duration.ofMinutes(2);

    @Override
    public Integer call() {
        if (resume && checkpointDir == null) {
            throw new ParameterException(spec.commandLine(), "--resume needs --checkpoint DIR");
        }
        if (stopAt != null && checkpointDir == null) {
            throw new ParameterException(spec.commandLine(),
                    "--stop-at needs --checkpoint DIR (the run ends with a checkpoint there)");
        }
        if (planPool != null) {
            usePlanPool(Worlds.worldSize(world == null ? 1 : world));
        }
        Backend backend = backend(validated(() -> Device.parse(device)));
        TrainingConfig config = validated(() -> trainingConfig());
        Corpus corpus = validated(() -> data == null
                ? new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.seq()))
                : ByteCorpus.open(data, config.seq(), config.seed()));
        GptMoeConfig model = validated(() -> modelConfig(corpus.vocabSize(), config.seq()));
        TrainingRun run = new TrainingRun(System.out, preset + " on "
                + (data == null ? "the synthetic corpus" : data.getFileName()), model, corpus, config);
        int ranks = Worlds.worldSize(world == null ? 1 : world);
        boolean staticPlacement = placement.strip().equalsIgnoreCase("static");
        if (ranks == 1 && plan == null && staticPlacement) {
            run.execute(backend, resume, threads);
            return 0;
        }
        if (world != null && world != ranks) {
            throw new ParameterException(spec.commandLine(), "--world " + world + " but mpirun started " + ranks
                    + " processes");
        }
        ParallelPlan parsed = validated(() -> ParallelPlan.parse(plan == null ? "dp=" + ranks : plan, ranks));
        validated(() -> {
            ParallelTrainer.validate(parsed, model, config);
            return PlacementController.policy(placement, model, parsed, config);
        });
        run.executeParallel(backend, parsed, COLLECTIVE_TIMEOUT, resume, threads, placement);
        return 0;
    }

    /**
     * --plan-pool: sets --plan, and --micro-batches and --capacity-factor unless given, from the
     * fastest pool entry that fits the run, and says which and why.
     */
    private void usePlanPool(int ranks) {
        if (plan != null) {
            throw new ParameterException(spec.commandLine(), "--plan-pool and --plan cannot both be given");
        }
        PlanPool pool = PlanPool.read(planPool);
        boolean ownMicroBatches = spec.commandLine().getParseResult().hasMatchedOption("--micro-batches");
        int given = microBatches;
        PlanPoolChoice choice = PlanPoolChoice.choose(planPool, pool, preset, ranks, e -> {
            microBatches = ownMicroBatches ? given : e.microBatches();
            try {
                TrainingConfig c = trainingConfig();
                ParallelTrainer.validate(e.parallelPlan(), modelConfig(GptMoeConfig.preset(preset).vocab(), c.seq()), c);
                return null;
            } catch (IllegalArgumentException ex) {
                return ex.getMessage();
            }
        });
        ParallelPlan p = choice.entry().parallelPlan();
        plan = "pp=" + p.pp() + ",tp=" + p.tp() + ",ep=" + p.ep() + ",dp=" + p.edp();
        if (capacityFactor == null) {
            capacityFactor = new CapacityFactor().convert(choice.entry().capacity());
        }
        System.out.println(choice.describe(planPool, pool));
        if (pool.globalBatch() != batch) {
            System.out.println("  (the pool was searched for a batch of " + pool.globalBatch() + " sequences, this run"
                    + " trains " + batch + ")");
        }
    }

    /** The backend of the device, or a one-line error saying why the device cannot be used. */
    private Backend backend(Device d) {
        try {
            return Backend.forDevice(d);
        } catch (BackendUnavailableException e) {
            throw new IllegalStateException("--device " + device + ": " + e.getMessage(), e);
        }
    }

    private TrainingConfig trainingConfig() {
        int seqLen = seq != null ? seq : GptMoeConfig.preset(preset).maxSeq();
        TrainingConfig.Builder b = TrainingConfig.builder().steps(steps).batch(batch).microBatches(microBatches)
                .seq(seqLen).lr(lr).minLr(minLr).weightDecay(weightDecay).clipNorm(clipNorm).seed(seed)
                .evalEvery(evalEvery).evalBatches(evalBatches).checkpointDir(checkpointDir)
                .checkpointEvery(checkpointEvery).metrics(metrics).report(report);
        if (warmup != null) {
            b.warmup(warmup);
        }
        if (stopAt != null) {
            b.stopAt(stopAt);
        }
        return b.build();
    }

    /** The preset with the overrides given; vocabulary and positions sized to the data. */
    private GptMoeConfig modelConfig(int vocab, int seqLen) {
        GptMoeConfig.Builder b = GptMoeConfig.preset(preset).toBuilder().vocab(vocab).maxSeq(seqLen);
        if (layers != null) {
            b.layers(layers);
        }
        if (hidden != null) {
            b.hidden(hidden);
        }
        if (heads != null) {
            b.heads(heads);
        }
        if (experts != null) {
            b.experts(experts);
        }
        if (topK != null) {
            b.topK(topK);
        }
        if (moeEvery != null) {
            b.moeEvery(moeEvery);
        }
        if (capacityFactor != null) {
            b.capacityFactor(capacityFactor);
        }
        return b.build();
    }

    /**
     * Runs a configuration step; a validation message that starts with a field name
     * ("microBatches: must divide ...") becomes a usage error naming the option ("--micro-batches").
     */
    private <T> T validated(Callable<T> step) {
        try {
            return step.call();
        } catch (IllegalArgumentException e) {
            ParameterException named = OptionErrors.naming(spec, e);
            throw named != null ? named : e;
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Defaults of the training options: those of {@link TrainingConfig#builder()}, so they are written once. */
    static final class Defaults implements CommandLine.IDefaultValueProvider {
        private static final Map<String, String> FIELDS = TrainingConfig.builder().build().toMap();

        @Override
        public String defaultValue(ArgSpec arg) {
            if (!(arg instanceof OptionSpec option) || !option.type().isPrimitive()) {
                return null; // boxed options are "not given" unless given
            }
            for (String name : option.names()) {
                String value = FIELDS.get(camel(name.substring(2)));
                if (value != null && !value.isEmpty()) {
                    return value;
                }
            }
            return null;
        }

        private static String camel(String kebab) {
            StringBuilder s = new StringBuilder();
            for (String part : kebab.split("-")) {
                s.append(s.isEmpty() ? part : Character.toUpperCase(part.charAt(0)) + part.substring(1));
            }
            return s.toString();
        }
    }

    /** Accepts a positive number or "dropless". */
    static final class CapacityFactor implements CommandLine.ITypeConverter<Double> {
        @Override
        public Double convert(String value) {
            if (value.equalsIgnoreCase("dropless")) {
                return MoELayer.Config.DROPLESS;
            }
            double f = Double.parseDouble(value);
            if (!(f > 0)) {
                throw new CommandLine.TypeConversionException("'" + value + "' is not a positive number or 'dropless'");
            }
            return f;
        }
    }

    /** The preset names, for --help and shell completion. */
    static final class Presets implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return GptMoeConfig.presetNames().iterator();
        }
    }
}
