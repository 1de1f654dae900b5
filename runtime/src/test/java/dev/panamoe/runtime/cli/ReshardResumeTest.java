package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.comm.MpiRun;
import dev.panamoe.runtime.data.TextCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.parallel.CheckpointShards;
import dev.panamoe.runtime.parallel.ProcessGroups;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.AdamW;
import dev.panamoe.runtime.train.Checkpoint;
import dev.panamoe.runtime.train.CheckpointException;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.runtime.train.WorldCheckpoint;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --resume} under another plan and world: an 8-rank run (pp=2, dp=2, ep=2, placement smart:2,
 * which has moved and replicated experts by then) checkpointed at step 14 of 18 continues on one
 * device, on 4 ranks tp=2,ep=2 and under {@code mpirun -np 4} ep=4. Each continuation's losses and gradient norms match, within the plans'
 * equivalence tolerance (1e-5 relative), both the uninterrupted 8-rank run and an uninterrupted run
 * of its own plan (plans train alike from the same seed); right after the resume every rank holds
 * exactly the checkpoint's global values and AdamW moments, sliced as its plan cuts them; a plan
 * that does not fit, a missing and a damaged rank file are refused in one line.
 */
class ReshardResumeTest {
    private static final int STEPS = 18;
    private static final int STOP = 14;
    /** Filled in by {@link #trainEightRanksToTheStop}: the model and run, on the skewed text of {@link #skewedText}. */
    private static List<String> model;
    private static Path text;
    /**
     * smart:2 first decides at step 10 (its start period); top-1 routing of a one-byte text sends
     * nearly every token of a layer to one expert, hotter than a device's fair share, and enough
     * tokens a step (batch 64 of 32) make a replica pay for its gradient all-reduce: by step 14
     * the placement holds replicas, which the resumes then have to move.
     */
    private static final List<String> EIGHT = List.of("--world", "8", "--plan", "pp=2,dp=2,ep=2", "--placement",
            "smart:2");
    private static final double TOLERANCE = 1e-5;
    /**
     * bf16 plans against one device, as in MixedPrecisionTrainingTest (measured there at most
     * 3.0e-4): a sum ordered otherwise may round a bf16 value the other way, one ulp (2^-8).
     */
    private static final double BF16_TOLERANCE = 1e-3;
    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    @TempDir
    static Path dir;
    /** The 8-rank checkpoint of step {@link #STOP}; each resume works on a copy of it. */
    static Path base;
    static List<StepMetrics> uninterrupted;

    private static Result train(List<String> extra) {
        List<String> args = new ArrayList<>(model);
        args.addAll(extra);
        return TrainCommandTest.run(args.toArray(String[]::new));
    }

    private static List<String> list(List<String> a, String... more) {
        List<String> all = new ArrayList<>(a);
        all.addAll(List.of(more));
        return all;
    }

    private static Path skewedText() {
        try {
            text = Files.writeString(dir.resolve("skewed.txt"), "a".repeat(20_000));
            return text;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @BeforeAll
    static void trainEightRanksToTheStop() {
        model = List.of("train", "--layers", "4", "--hidden", "16", "--heads", "2", "--experts", "4", "--top-k", "1",
                "--capacity-factor", "dropless", "--seq", "32", "--batch", "64", "--micro-batches", "2", "--warmup",
                "1", "--eval-every", "0", "--eval-batches", "1", "--steps", Integer.toString(STEPS), "--data",
                skewedText().toString());
        base = dir.resolve("base");
        Result r = train(list(EIGHT, "--stop-at", Integer.toString(STOP), "--checkpoint", base.toString(), "--metrics",
                dir.resolve("base.jsonl").toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        Path full = dir.resolve("full.jsonl");
        r = train(list(EIGHT, "--metrics", full.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        uninterrupted = MetricsWriter.read(full);
        assertEquals(STEPS, uninterrupted.size());
        try (WorldCheckpoint c = WorldCheckpoint.open(base)) {
            List<String> placements = c.index().placements();
            assertTrue(placements.stream().anyMatch(ReshardResumeTest::hasReplica),
                    "smart:2 replicated an expert by step " + STOP + ": " + placements);
        }
    }

    /** Whether a placement's slots ("[0, 1, -1, -1, 2, 0, -1, -1]") hold an expert twice. */
    private static boolean hasReplica(String placement) {
        String slots = placement.substring(placement.indexOf('[') + 1, placement.indexOf(']'));
        List<String> experts = Stream.of(slots.split(", ")).filter(e -> !e.equals("-1")).toList();
        return experts.stream().distinct().count() < experts.size();
    }

    private static String manifest() {
        return String.format("step-%08d.manifest.json", STOP);
    }

    private static String rankFile(int rank) {
        return String.format("step-%08d.rank-%05d-of-00008.pmoe", STOP, rank);
    }

    /** A copy of the base checkpoint, which a resume may then extend. */
    private static Path copyOfBase(String name) {
        Path copy = dir.resolve(name);
        try (Stream<Path> files = Files.list(base)) {
            Files.createDirectories(copy);
            for (Path f : files.toList()) {
                Files.copy(f, copy.resolve(f.getFileName()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return copy;
    }

    /** Resumes a copy of the base checkpoint on layout; returns the steps it ran. */
    private static List<StepMetrics> resume(String name, List<String> layout, String expectedChange) {
        Path ck = copyOfBase(name);
        Path metrics = dir.resolve(name + ".jsonl");
        Result r = train(list(layout, "--checkpoint", ck.toString(), "--resume", "--metrics", metrics.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("resumed from " + ck + " at step " + STOP + ": " + expectedChange), r.out());
        return MetricsWriter.read(metrics);
    }

    /** The uninterrupted run of layout from step 0 (the same seed: the same weights as the 8 ranks', bar rounding). */
    private static List<StepMetrics> ownPlan(String name, List<String> layout) {
        Path metrics = dir.resolve(name + "-own.jsonl");
        Result r = train(list(layout, "--metrics", metrics.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        return MetricsWriter.read(metrics);
    }

    private static void assertContinues(String what, List<StepMetrics> reference, List<StepMetrics> resumed) {
        assertEquals(STEPS - STOP, resumed.size(), what + ": the steps after the checkpoint");
        for (StepMetrics m : resumed) {
            StepMetrics want = reference.get((int) m.step() - 1);
            assertClose(what + " step " + m.step() + " loss", want.loss(), m.loss());
            assertClose(what + " step " + m.step() + " gradient norm", want.gradNorm(), m.gradNorm());
        }
        assertEquals(STOP + 1, resumed.getFirst().step(), what + ": continues at the saved step");
        assertClose(what + " validation loss", reference.getLast().valLoss(), resumed.getLast().valLoss());
    }

    private static void assertClose(String what, double expected, double actual) {
        assertClose(what, expected, actual, TOLERANCE);
    }

    private static void assertClose(String what, double expected, double actual, double tolerance) {
        double rel = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-30);
        assertTrue(rel <= tolerance, what + ": expected " + expected + ", got " + actual + " (relative " + rel + ")");
    }

    @Test
    void eightRanksContinueOnOneDevice() {
        List<String> layout = List.of("--world", "1");
        List<StepMetrics> got = resume("one", layout, "plan pp=2,tp=1,ep=2,edp=2 (8 ranks) -> single device (1 rank)");
        assertContinues("one device vs the 8 ranks", uninterrupted, got);
        assertContinues("one device vs its own run", ownPlan("one", layout), got);
    }

    /**
     * A bf16 run of the 8 ranks, checkpointed at the stop, continues on one device in bf16 (the
     * checkpoint's precision, no --precision given) like the uninterrupted 8-rank bf16 run, within
     * the bf16 plans' tolerance ({@link #BF16_TOLERANCE}; measured 9.4e-5 relative in the loss on
     * 2026-12-05).
     */
    @Test
    void aBf16CheckpointOfTheEightRanksContinuesInBf16OnOneDevice() {
        Path ck = dir.resolve("bf16");
        List<String> bf16 = list(EIGHT, "--precision", "bf16");
        Result r = train(list(bf16, "--stop-at", Integer.toString(STOP), "--checkpoint", ck.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        Path full = dir.resolve("bf16-full.jsonl");
        r = train(list(bf16, "--metrics", full.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        List<StepMetrics> reference = MetricsWriter.read(full);
        Path metrics = dir.resolve("bf16-one.jsonl");
        r = train(List.of("--world", "1", "--checkpoint", ck.toString(), "--resume", "--metrics", metrics.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("precision: bf16"), r.out());
        List<StepMetrics> resumed = MetricsWriter.read(metrics);
        assertEquals(STEPS - STOP, resumed.size(), "the steps after the checkpoint");
        double tolerance = BF16_TOLERANCE;
        for (StepMetrics m : resumed) {
            StepMetrics want = reference.get((int) m.step() - 1);
            assertClose("bf16 one device step " + m.step() + " loss", want.loss(), m.loss(), tolerance);
            assertClose("bf16 one device step " + m.step() + " gradient norm", want.gradNorm(), m.gradNorm(), tolerance);
        }
    }

    @Test
    void eightRanksContinueOnFourTensorParallelRanks() {
        List<String> layout = List.of("--world", "4", "--plan", "tp=2,ep=2");
        List<StepMetrics> got = resume("tp", layout, "plan pp=2,tp=1,ep=2,edp=2 (8 ranks) -> pp=1,tp=2,ep=2,edp=1 "
                + "(4 ranks), each rank reading its slices through the manifest; placement static replayed");
        assertContinues("tp=2,ep=2 vs the 8 ranks", uninterrupted, got);
        assertContinues("tp=2,ep=2 vs its own run", ownPlan("tp", layout), got);
    }

    @Test
    void eightRanksContinueUnderMpirunOnFourProcesses() throws Exception {
        String mpirun = MpiRun.mpirun();
        assumeTrue(mpirun != null, "mpirun is not on PATH (install openmpi-bin and libopenmpi-dev): MPI run skipped");
        Path ck = copyOfBase("mpi");
        Path metrics = dir.resolve("mpi.jsonl");
        List<String> args = list(model, "--plan", "ep=4", "--checkpoint", ck.toString(), "--resume", "--metrics",
                metrics.toString(), "--threads", "1");
        MpiRun.Job job = MpiRun.run(mpirun, 4, Main.class.getName(), args, 240_000);
        assertEquals(0, job.exitCode(), job.output());
        assertTrue(job.output().contains("at step " + STOP + ": plan pp=2,tp=1,ep=2,edp=2 (8 ranks) -> pp=1,tp=1,ep=4,edp=1 "
                + "(4 ranks)"), job.output());
        assertContinues("mpirun ep=4 vs the 8 ranks", uninterrupted, MetricsWriter.read(metrics));
    }

    /** Right after the resume, each rank's values and moments are its slices of the checkpoint's global tensors. */
    @Test
    void eachRankHoldsItsSlicesOfTheCheckpointsValuesAndMoments() {
        Path ck = copyOfBase("state");
        try (WorldCheckpoint c = WorldCheckpoint.open(ck)) {
            GptMoeConfig model = c.modelConfig();
            TrainingConfig config = c.trainingConfig().toBuilder()
                    .checkpointDir(ck).metrics(null).build();
            // one device: every tensor whole
            try (GptMoeModel m = new GptMoeModel(CpuBackend.get(), model, config.seed());
                    Trainer t = new Trainer(m, corpus(config), config)) {
                t.resume();
                assertHolds(c, t, "one device");
            }
            ParallelPlan plan = ParallelPlan.parse("tp=2,ep=2", 4);
            List<Integer> checked = InJvmWorld.run(4, TIMEOUT, comm -> {
                try (ProcessGroups groups = new ProcessGroups(new RankLayout(plan), comm);
                        GptMoeModel m = new GptMoeModel(CpuBackend.get(), model, config.seed(), groups);
                        Trainer t = new Trainer(m, corpus(config), config)) {
                    t.resume();
                    return assertHolds(c, t, "tp=2,ep=2 rank " + comm.rank());
                }
            });
            assertTrue(checked.stream().allMatch(n -> n > 0), "every rank compared its tensors: " + checked);
        }
    }

    /** The text the runs trained on, as the train command opens it (its bytes, the last 10% held out). */
    private static TextCorpus corpus(TrainingConfig config) {
        return TextCorpus.open(text.toAbsolutePath().normalize(), config.seq(), config.seed());
    }

    /** Asserts every parameter's value, m and v equal its slice of the global tensors; returns how many tensors. */
    private static int assertHolds(WorldCheckpoint c, Trainer t, String who) {
        assertEquals(STOP, t.step(), who);
        assertEquals(c.index().dataPosition(), t.dataPosition(), who);
        List<AdamW.State> states = t.optimizer().states();
        List<Checkpoint.Shard> shards = CheckpointShards.of(t.model());
        int compared = 0;
        for (int i = 0; i < states.size(); i++) {
            Checkpoint.Shard s = shards.get(i);
            var global = c.tensor(s.tensor());
            AdamW.State state = states.get(i);
            Tensor[] held = {state.parameter().value(), state.m(), state.v()};
            String[] roles = {"value", "m", "v"};
            for (int r = 0; r < roles.length; r++) {
                float[] want = s.slice().of(c.read(global, roles[r]), global.shape());
                assertArrayEquals(want, held[r].toFloatArray(), who + ": " + s.tensor() + " " + roles[r]);
                compared++;
            }
        }
        return compared;
    }

    @Test
    void aPlanThatDoesNotFitIsRefusedBeforeAnyRankStarts() {
        Path ck = copyOfBase("nofit");
        Result r = train(List.of("--world", "8", "--plan", "pp=8", "--checkpoint", ck.toString(), "--resume"));
        assertEquals(2, r.code(), r.out() + r.err());
        assertFalse(r.err().strip().contains("\n"), "one line: " + r.err());
        assertTrue(r.err().contains("pp=8"), r.err());
        assertTrue(Files.exists(ck.resolve(manifest())), "the checkpoint is untouched");
    }

    @Test
    void aMissingOrDamagedRankFileIsRefusedWithNothingLoaded() throws IOException {
        Path missing = copyOfBase("missing");
        Files.delete(missing.resolve(rankFile(5)));
        Result r = train(List.of("--world", "4", "--plan", "tp=2,ep=2", "--checkpoint", missing.toString(), "--resume"));
        assertEquals(1, r.code(), r.out() + r.err());
        assertFalse(r.err().strip().contains("\n"), "one line: " + r.err());
        assertTrue(r.err().contains("checkpoint " + missing + " step " + STOP + " is incomplete: rank 5's file "
                + rankFile(5) + " is missing"), r.err());
        assertFalse(Files.exists(missing.resolve(String.format("step-%08d.manifest.json", STEPS))), "no step ran");

        Path damaged = copyOfBase("damaged");
        Path file = damaged.resolve(rankFile(3));
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long at = ch.size() - 8;
            ByteBuffer b = ByteBuffer.allocate(1);
            ch.read(b, at);
            ch.write(ByteBuffer.wrap(new byte[] {(byte) (b.get(0) ^ 0x40)}), at);
        }
        r = train(List.of("--world", "1", "--checkpoint", damaged.toString(), "--resume"));
        assertEquals(1, r.code(), r.out() + r.err());
        assertFalse(r.err().strip().contains("\n"), "one line: " + r.err());
        assertTrue(r.err().contains("checkpoint " + file + " is not the file its manifest"), r.err());
    }

    /** The refusal happens before any tensor is copied: a Trainer's model is unchanged by it. */
    @Test
    void aRefusedResumeLeavesTheModelAsItWas() throws IOException {
        Path ck = copyOfBase("refused");
        Path file = ck.resolve(rankFile(7));
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 4);
        }
        try (WorldCheckpoint c = WorldCheckpoint.open(base)) {
            GptMoeConfig model = c.modelConfig();
            TrainingConfig config = c.trainingConfig().toBuilder()
                    .checkpointDir(ck).metrics(null).build();
            try (GptMoeModel m = new GptMoeModel(CpuBackend.get(), model, config.seed());
                    Trainer t = new Trainer(m, corpus(config), config)) {
                List<float[]> before = m.parameters().stream().map(p -> p.value().toFloatArray()).toList();
                CheckpointException e = org.junit.jupiter.api.Assertions.assertThrows(CheckpointException.class,
                        t::resume);
                assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
                for (int i = 0; i < before.size(); i++) {
                    assertArrayEquals(before.get(i), m.parameters().get(i).value().toFloatArray(), "untouched");
                }
                assertEquals(0, t.step());
            }
        }
    }

    /**
     * A single device's checkpoint records no expert counts: the policy of the plan it moves to
     * starts from its initial placement there and counts from that step, and that run's own
     * checkpoints then resume on their plan by the exact path (the counts replayed from that step).
     */
    @Test
    void aPolicyStartedAtAResumedStepReplaysFromThere() {
        Path ck = dir.resolve("from-one");
        Result r = train(List.of("--stop-at", "2", "--checkpoint", ck.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        r = train(List.of("--world", "2", "--plan", "ep=2", "--placement", "greedy:1", "--stop-at", "4", "--checkpoint",
                ck.toString(), "--resume"));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("at step 2: plan single device (1 rank) -> pp=1,tp=1,ep=2,edp=1 (2 ranks), each "
                + "rank reading its slices through the manifest; placement greedy:1 starts from its initial placement"),
                r.out());
        Path metrics = dir.resolve("from-one.jsonl");
        r = train(List.of("--checkpoint", ck.toString(), "--resume", "--metrics", metrics.toString()));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("resumed from " + ck + " at step 4 (every rank's file of that step)"), r.out());
        assertEquals(STEPS - 4, MetricsWriter.read(metrics).size(), "steps 5 to " + STEPS + " on the same plan");
    }

    @Test
    void sampleOpensTheEightRankCheckpointOnOneDevice() {
        Result r = TrainCommandTest.run("sample", "--checkpoint", base.toString(), "--tokens", "5", "--prompt", "3 1 4");
        assertEquals(0, r.code(), r.err() + r.out());
        assertTrue(r.out().contains(manifest() + " (step " + STOP + ")"), r.out());
    }
}
