package dev.panamoe.runtime.cli;

import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.BackendUnavailableException;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.runtime.comm.Worlds;
import dev.panamoe.runtime.data.Corpus;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.data.TextCorpus;
import dev.panamoe.runtime.data.Tokenizer;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.parallel.MemoryEstimate;
import dev.panamoe.runtime.parallel.PlacementController;
import dev.panamoe.runtime.train.CheckpointException;
import dev.panamoe.runtime.train.CheckpointStore;
import dev.panamoe.runtime.train.DirectoryLock;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.SafeTensors;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.search.PlanPool;
import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
                + "sources (whose loss floor is known), or on the text of --data FILE (its bytes or BPE tokens, "
                + "--tokenizer).",
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
            description = "Train on the text of FILE (last 10%% held out); default: the synthetic corpus.")
    Path data;
    @Option(names = "--tokenizer", paramLabel = "bytes|gpt2|cl100k",
            description = "How --data becomes tokens: its bytes, or GPT-2's or cl100k's BPE; the model's vocabulary is "
                    + "the tokenizer's, and the checkpoint keeps it for 'sample' (default: bytes).")
    String tokenizer;
    @Option(names = "--seq", description = "Tokens per sequence, at most the preset's maximum (default: it).")
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
    @Option(names = "--precision", paramLabel = "fp32|bf16|auto", defaultValue = "fp32",
            description = "fp32, bf16 (mixed precision: f32 master weights, gradients and AdamW moments; bf16 "
                    + "working weights, activations and activation gradients; the router, softmaxes, norm statistics "
                    + "and cross-entropy in f32) or auto (bf16 where the device computes it natively: AVX512_BF16, or "
                    + "CUDA compute capability 8.0+; 'doctor' says which) (default: ${DEFAULT-VALUE}).")
    String precision;
    @Option(names = "--grad-reduce", paramLabel = "fp32|bf16", defaultValue = "fp32",
            description = "The precision gradients travel in when summed over data-parallel replicas: fp32, or bf16 "
                    + "in a bf16 run (half the bytes; rounded to bf16, added in f32) (default: ${DEFAULT-VALUE}).")
    String gradReduce;
    @Option(names = "--device", paramLabel = "cpu|cuda[:N]", defaultValue = "cpu",
            description = "Where the model lives and the kernels run (default: ${DEFAULT-VALUE}).")
    String device;

    // ---- outputs and checkpoints ----
    @Option(names = "--metrics", paramLabel = "FILE", description = "Write one JSON line of metrics per step.")
    Path metrics;
    @Option(names = "--report", paramLabel = "DIR", description = "Write the report (index.html and PNG charts).")
    Path report;
    @Option(names = {"--checkpoint", "--checkpoint-dir"}, paramLabel = "DIR",
            description = "Keep the training state in DIR: a step's rank files and its manifest (README: Checkpoints).")
    Path checkpointDir;
    @Option(names = "--checkpoint-every", paramLabel = "N",
            description = "Checkpoint every N steps, besides the end (default: ${DEFAULT-VALUE}, only the end).")
    int checkpointEvery;
    @Option(names = "--resume", description = "Continue the run saved in --checkpoint DIR, with the options it was "
            + "started with (options given now must agree, bar outputs and evaluation; another --world, --plan or "
            + "--placement moves the run there).")
    boolean resume;
    @Option(names = "--init-from", paramLabel = "FILE",
            description = "Start from the weights of a safetensors file of global tensors (as 'checkpoint export' "
                    + "writes it) instead of the seed's initialisation; AdamW starts afresh.")
    Path initFrom;
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

    @Option(names = "--collective-timeout", paramLabel = "SECONDS", converter = Seconds.class, defaultValue = "120",
            description = "How long a rank waits in a collective for the others before the run fails, naming the "
                    + "ranks that did not arrive (a failed rank stops the others sooner; default: ${DEFAULT-VALUE}).")
    Duration collectiveTimeout;

    @Option(names = "--dry-run", description = "Print the parameter count and the memory estimate per rank, broken "
            + "down, and exit without training.")
    boolean dryRun;

    @Override
    public Integer call() {
        if (resume && checkpointDir == null) {
            throw new ParameterException(spec.commandLine(), "--resume needs --checkpoint DIR");
        }
        if (resume && initFrom != null) {
            throw new ParameterException(spec.commandLine(), "--init-from starts a run from weights and --resume "
                    + "continues one from its checkpoint: give one of them");
        }
        if (resume) {
            takeResumedSettings();
        }
        if (initFrom != null) {
            try {
                SafeTensors.open(initFrom).close(); // checks the header: a bad file is refused before any step
            } catch (CheckpointException e) {
                throw new ParameterException(spec.commandLine(), "Invalid value for option '--init-from': "
                        + e.getMessage());
            }
        }
        if (stopAt != null && checkpointDir == null) {
            throw new ParameterException(spec.commandLine(),
                    "--stop-at needs --checkpoint DIR (the run ends with a checkpoint there)");
        }
        int maxThreads = 8 * Runtime.getRuntime().availableProcessors();
        if (threads != null && threads > maxThreads) {
            // OpenMP starts every thread asked for: 100000 of them stall the run before its first step
            throw new ParameterException(spec.commandLine(), "Invalid value for option '--threads': " + threads
                    + " is outside [1, " + maxThreads + "] (8 per processor of this machine)");
        }
        if (planPool != null) {
            usePlanPool(Worlds.worldSize(world == null ? 1 : world));
        }
        if (tokenizer != null && data == null) {
            throw new ParameterException(spec.commandLine(), "--tokenizer needs --data FILE (the synthetic corpus has "
                    + "its own tokens)");
        }
        Device dev = validated(() -> Device.parse(device));
        TrainingConfig config = validated(() -> trainingConfig());
        Corpus corpus = validated(() -> data == null
                ? new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.seq()))
                : TextCorpus.open(data.toAbsolutePath().normalize(), Tokenizer.of(config.tokenizer()), config.seq(),
                        TextCorpus.DEFAULT_VALIDATION_FRACTION, config.seed()));
        GptMoeConfig model = validated(() -> modelConfig(corpus.vocabSize(), config.seq()));
        int ranks = Worlds.worldSize(world == null ? 1 : world);
        boolean single = ranks == 1 && plan == null && placement.strip().equalsIgnoreCase("static");
        if (!single && world != null && world != ranks) {
            throw new ParameterException(spec.commandLine(), "--world " + world + " but mpirun started " + ranks
                    + " processes");
        }
        ParallelPlan parsed = single ? ParallelPlan.SINGLE
                : validated(() -> ParallelPlan.parse(plan == null ? "dp=" + ranks : plan, ranks));
        int slotsPerDevice = single ? model.experts() : validated(() -> {
            Trainer.validate(parsed, model, config);
            return PlacementController.policy(placement, model, parsed, config).initial().stream()
                    .mapToInt(ExpertPlacement::slotsPerDevice).max().orElse(0);
        });
        MemoryEstimate estimate = validated(() -> MemoryEstimate.of(model, config, parsed, slotsPerDevice, dev));
        if (dryRun) {
            if (Worlds.processRank() != 0) {
                return 0; // under mpirun the first process alone prints
            }
            System.out.println("model:    " + model.describe());
            System.out.printf(Locale.ROOT, "parameters: %d (%d active per token)%n", model.parameterCount(),
                    model.activeParameterCount());
            System.out.print(estimate.describe());
            return 0;
        }
        Backend backend = backend(dev);
        requireMemory(estimate, dev, single || !Worlds.underMpirun(), localRanks());
        TrainingRun run = new TrainingRun(System.out, preset + " on "
                + (data == null ? "the synthetic corpus" : data.getFileName()), model, corpus, config)
                .settings(settings()).initFrom(initFrom);
        checkOutputs();
        try (DirectoryLock lock = lockCheckpointDirectory()) {
            run.execute(backend, single ? null : parsed, collectiveTimeout, resume, threads, placement);
        }
        return 0;
    }

    // ---- outputs, the directory lock and --resume ----

    /**
     * The options a checkpoint records, by how a --resume treats them: DEFINING ones must agree
     * with the checkpoint when given; ADJUSTABLE ones (outputs, evaluation) may change. Either
     * kind, when not given, is taken from the checkpoint. LAYOUT ones say where the run trains:
     * all taken from the checkpoint when none is given (and mpirun started as many processes as
     * it had ranks), else the run moves to the layout given (the others at their defaults) and
     * the checkpoint is read through its manifest's index. --threads and --device describe the
     * machine, not the run: not recorded.
     */
    private static final List<String> DEFINING = List.of("--preset", "--layers", "--hidden", "--heads", "--experts",
            "--top-k", "--moe-every", "--capacity-factor", "--data", "--tokenizer", "--seq", "--steps", "--batch",
            "--micro-batches", "--lr", "--min-lr", "--warmup", "--weight-decay", "--clip-norm", "--seed");
    private static final List<String> LAYOUT = List.of("--world", "--plan", "--placement");
    private static final List<String> ADJUSTABLE = List.of("--eval-every", "--eval-batches", "--metrics", "--report",
            "--checkpoint-every", "--precision", "--grad-reduce");
    private static final List<String> RECORDED = concat(concat(DEFINING, LAYOUT), ADJUSTABLE);

    /** The recorded options' values (paths absolute), for the checkpoints' manifests. */
    private Map<String, String> settings() {
        Map<String, String> settings = new LinkedHashMap<>();
        for (String name : RECORDED) {
            Object value = spec.findOption(name).getValue();
            if (value != null) {
                settings.put(name, text(value));
            }
        }
        return settings;
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    private static String text(Object value) {
        return value instanceof Path p ? p.toAbsolutePath().normalize().toString() : String.valueOf(value);
    }

    /**
     * --resume: every recorded option not given takes the checkpoint's value; a defining option
     * given with another value is refused, one line per difference.
     */
    private void takeResumedSettings() {
        CheckpointStore.Manifest m = CheckpointStore.newest(checkpointDir);
        if (m == null) {
            throw new ParameterException(spec.commandLine(), "--resume: " + checkpointDir + " holds no checkpoint (no "
                    + "step-*.manifest.json there)");
        }
        List<String> differences = new ArrayList<>();
        boolean relayout = LAYOUT.stream().anyMatch(name -> given(spec.findOption(name))
                && !sameValue(name, text(spec.findOption(name).getValue()), m.settings().get(name)))
                || Worlds.underMpirun() && Worlds.worldSize(1) != m.world();
        for (String name : RECORDED) {
            OptionSpec option = spec.findOption(name);
            String stored = m.settings().get(name);
            if (name.equals("--plan") && planPool != null || LAYOUT.contains(name) && relayout) {
                continue; // the pool chooses the plan again, as it did for the run; or the run moves to another layout
            }
            if (given(option)) {
                String given = text(option.getValue());
                // An option the run left at its default is not recorded: the checkpoint's own
                // configuration check refuses a given value whose effect differs from it.
                if (DEFINING.contains(name) && stored != null && !sameValue(name, given, stored)) {
                    differences.add(name + " " + given + " here, " + (stored == null ? "not given" : stored)
                            + " in the checkpoint");
                }
                if (name.equals("--precision") && stored != null && !given.equalsIgnoreCase(stored)) {
                    System.out.println("--resume: the checkpoint trained in " + stored + ", this run continues in "
                            + given + " (the f32 masters and moments carry over)");
                }
            } else if (stored != null) {
                option.setValue(parse(option, stored));
            }
        }
        if (!differences.isEmpty()) {
            throw new ParameterException(spec.commandLine(), "--resume: " + differences.size()
                    + (differences.size() == 1 ? " option contradicts" : " options contradict") + " the checkpoint "
                    + m.file() + " (leave them out to take its values):\n  " + String.join("\n  ", differences));
        }
    }

    private boolean given(OptionSpec option) {
        return spec.commandLine().getParseResult().hasMatchedOption(option);
    }

    private static final Pattern PLAN_DEGREE = Pattern.compile("([a-z]+)=?(\\d+)");

    /** Plans compare by their degrees, whatever the spelling (dp=2,ep=2 is ep2*dp2). */
    private static boolean sameValue(String name, String given, String stored) {
        return stored != null && (name.equals("--plan") ? planDegrees(given).equals(planDegrees(stored))
                : given.equals(stored));
    }

    private static Map<String, String> planDegrees(String plan) {
        Map<String, String> degrees = new TreeMap<>();
        Matcher m = PLAN_DEGREE.matcher(plan);
        while (m.find()) {
            degrees.put(m.group(1).equals("dp") ? "edp" : m.group(1), m.group(2));
        }
        return degrees;
    }

    /** A recorded value back into the option's type. */
    private Object parse(OptionSpec option, String value) {
        Class<?> type = option.type();
        try {
            if (option.converters() != null && option.converters().length > 0) {
                return option.converters()[0].convert(value);
            } else if (type == int.class || type == Integer.class) {
                return Integer.valueOf(value);
            } else if (type == long.class || type == Long.class) {
                return Long.valueOf(value);
            } else if (type == float.class || type == Float.class) {
                return Float.valueOf(value);
            } else if (type == double.class || type == Double.class) {
                return Double.valueOf(value);
            } else if (type == Path.class) {
                return Path.of(value);
            } else if (type == String.class) {
                return value;
            }
        } catch (Exception e) {
            throw new ParameterException(spec.commandLine(), "--resume: the checkpoint records " + option.longestName()
                    + " '" + value + "', which is not valid: " + e.getMessage(), e, option, value);
        }
        throw new IllegalStateException(option.longestName() + ": options of type " + type + " cannot be resumed");
    }

    /** Every output path is writable, and of the right kind, before the first step (not after the last). */
    private void checkOutputs() {
        if (metrics != null) {
            if (Files.isDirectory(metrics)) {
                throw new ParameterException(spec.commandLine(), "--metrics " + metrics + " is a directory, not a file");
            }
            writableDirectory("--metrics", metrics, metrics.toAbsolutePath().getParent());
        }
        if (report != null) {
            writableDirectory("--report", report, report);
        }
        if (checkpointDir != null) {
            writableDirectory("--checkpoint", checkpointDir, checkpointDir);
        }
    }

    /** Creates dir (the output of option, or its directory) and writes a file there, or says why it cannot. */
    private void writableDirectory(String option, Path output, Path dir) {
        String what = option + " " + output + ": " + (dir.equals(output) ? "" : "its directory " + dir + " ");
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new ParameterException(spec.commandLine(), what + "exists and is not a directory");
        }
        try {
            Files.createDirectories(dir);
            Files.delete(Files.createTempFile(dir, ".panamoe-write-test-", ".tmp"));
        } catch (IOException e) {
            String reason = e instanceof FileSystemException f && f.getReason() != null ? f.getReason()
                    : e.getClass().getSimpleName();
            throw new ParameterException(spec.commandLine(), what + "cannot be written (" + reason + ")");
        }
    }

    /**
     * Takes the checkpoint directory's lock for the run (null without --checkpoint): one holder per
     * job, this process in-JVM and rank 0's under mpirun. A fresh run refuses a directory that
     * already holds a checkpoint: resuming it, not overwriting it, is what such a directory is for.
     */
    private DirectoryLock lockCheckpointDirectory() {
        if (checkpointDir == null) {
            return null;
        }
        DirectoryLock lock = Worlds.processRank() == 0 ? DirectoryLock.acquire(checkpointDir) : null;
        CheckpointStore.Manifest existing = resume ? null : CheckpointStore.newest(checkpointDir);
        if (existing != null) {
            if (lock != null) {
                lock.close();
            }
            throw new ParameterException(spec.commandLine(), "--checkpoint " + checkpointDir + " already holds the "
                    + "checkpoint of step " + existing.step() + "; continue it with --resume, or choose another directory");
        }
        return lock;
    }

    /**
     * Refuses, in one line with both numbers, a run whose estimate exceeds what the process can
     * have: the machine's (or its cgroup's) available memory for the CPU, the device's free memory
     * for CUDA. In-JVM ranks share this process; under mpirun each process holds one rank and
     * processesHere share the node.
     */
    private void requireMemory(MemoryEstimate estimate, Device dev, boolean inJvm, int processesHere) {
        long need = inJvm ? estimate.worldBytes() : estimate.rankBytes();
        String needText = inJvm ? MemoryEstimate.bytes(need) : MemoryEstimate.bytes(need) + " per rank x "
                + processesHere + " ranks on this node";
        need = inJvm ? need : Math.multiplyExact(need, (long) processesHere);
        AvailableMemory available = dev.isCpu() ? AvailableMemory.host() : deviceMemory(dev);
        if (need > available.bytes()) {
            throw new IllegalStateException(String.format(Locale.ROOT, "the run needs an estimated %s (%s parameters; "
                    + "%s on the heaviest rank) but %s is available (%s); reduce --experts, --layers, --hidden, "
                    + "--batch, --seq or the ranks, or see the breakdown with --dry-run", needText,
                    estimate.parameters(), MemoryEstimate.bytes(estimate.rankBytes()),
                    MemoryEstimate.bytes(available.bytes()), available.source()));
        }
    }

    /** The free memory of a device whose backend has been created (so cudart is usable). */
    private static AvailableMemory deviceMemory(Device dev) {
        int previous = CudaRuntime.device();
        CudaRuntime.setDevice(dev.index());
        try {
            return new AvailableMemory(CudaRuntime.memoryInfo().free(), "free memory of " + dev);
        } finally {
            CudaRuntime.setDevice(previous);
        }
    }

    /** mpirun's count of this node's processes. */
    private static int localRanks() {
        String local = System.getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        return local == null ? 1 : Integer.parseInt(local.strip());
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
                Trainer.validate(e.parallelPlan(), modelConfig(GptMoeConfig.preset(preset).vocab(), c.seq()), c);
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
        int maxSeq = GptMoeConfig.preset(preset).maxSeq();
        if (seq != null && seq > maxSeq) {
            throw new IllegalArgumentException("seq: " + seq + " is above the maximum sequence length of preset "
                    + preset + ", " + maxSeq);
        }
        int seqLen = seq != null ? seq : maxSeq;
        TrainingConfig.Builder b = TrainingConfig.builder().steps(steps).batch(batch).microBatches(microBatches)
                .seq(seqLen).lr(lr).minLr(minLr).weightDecay(weightDecay).clipNorm(clipNorm).seed(seed)
                .evalEvery(evalEvery).evalBatches(evalBatches).checkpointDir(checkpointDir)
                .checkpointEvery(checkpointEvery).metrics(metrics).report(report)
                .tokenizer(data == null ? null : tokenizer == null ? "bytes" : tokenizer)
                .precision(Precision.parse("precision", precision))
                .gradReduce(Precision.parse("gradReduce", gradReduce));
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

    /** Seconds, a positive number (fractions allowed), as a Duration. */
    static final class Seconds implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String value) {
            double s = Double.parseDouble(value);
            if (!(s > 0) || s > Long.MAX_VALUE / 1e9) {
                throw new CommandLine.TypeConversionException("'" + value + "' is not a positive number of seconds");
            }
            return Duration.ofNanos(Math.round(s * 1e9));
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
