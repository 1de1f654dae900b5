package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.parallel.CheckpointShards;
import dev.panamoe.runtime.parallel.ProcessGroups;
import dev.panamoe.runtime.report.MetricsWriter;
import dev.panamoe.runtime.train.Checkpoint;
import dev.panamoe.runtime.train.CheckpointIndex;
import dev.panamoe.runtime.train.CheckpointStore;
import dev.panamoe.runtime.train.InitialWeights;
import dev.panamoe.runtime.train.SafeTensors;
import dev.panamoe.runtime.train.WorldCheckpoint;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code checkpoint info}, {@code checkpoint export} and {@code train --init-from}: a single-device
 * and an 8-rank world checkpoint (pp=2, dp=2, ep=2, experts moved and replicated) exported
 * to safetensors and read back by an independent reader (scripts/safetensors-check.py, Python's
 * standard library), against global tensors put together here from the rank files' headers; the
 * 8-rank export against the single-device run; --init-from reproducing the exported weights
 * exactly on one device and on every rank; and the refusals.
 */
class CheckpointExportTest {
    private static final List<String> MODEL = List.of("--layers", "4", "--hidden", "16", "--heads", "2", "--experts",
            "4", "--capacity-factor", "dropless", "--seq", "8", "--batch", "8", "--micro-batches", "2", "--warmup", "1",
            "--eval-every", "0");
    /** replica:2 replicates and moves experts within the first steps of this run (smart:2 waits for more evidence). */
    private static final List<String> PARALLEL = List.of("--world", "8", "--plan", "pp=2,dp=2,ep=2", "--placement",
            "replica:2");
    private static final Path CHECKER = Path.of("..", "scripts", "safetensors-check.py");

    @TempDir
    static Path dir;
    static Path single;
    static Path world;
    /** The same plan under greedy:1, which permutes experts between slots (no replicas). */
    static Path moved;
    /** Tensor-parallel: every attention, FFN and expert weight cut by columns or rows. */
    static Path tensor;

    private static Result train(List<String> extra) {
        List<String> args = new ArrayList<>(List.of("train"));
        args.addAll(MODEL);
        args.addAll(extra);
        Result r = TrainCommandTest.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.out() + r.err());
        return r;
    }

    private static List<String> list(List<String> a, String... more) {
        List<String> all = new ArrayList<>(a);
        all.addAll(List.of(more));
        return all;
    }

    @BeforeAll
    static void trainBoth() {
        single = dir.resolve("single");
        world = dir.resolve("world");
        train(List.of("--steps", "4", "--checkpoint", single.toString()));
        train(list(PARALLEL, "--steps", "4", "--checkpoint", world.toString()));
        moved = dir.resolve("moved");
        List<String> greedy = new ArrayList<>(PARALLEL);
        greedy.set(greedy.indexOf("--placement") + 1, "greedy:1");
        train(list(greedy, "--steps", "4", "--checkpoint", moved.toString()));
        tensor = dir.resolve("tensor");
        train(List.of("--world", "4", "--plan", "tp=2,ep=2", "--steps", "4", "--checkpoint", tensor.toString()));
    }

    private static Result run(String... args) {
        return TrainCommandTest.run(args);
    }

    @Test
    void infoDescribesTheStepAndChecksEveryFile() {
        Result r = run("checkpoint", "info", world.toString(), "--tensors");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("checkpoint: " + world + ", step 4 (step-00000004.manifest.json)"), r.out());
        assertTrue(r.out().contains("plan:       pp=2,tp=1,ep=2,edp=2 on 8 ranks"), r.out());
        assertTrue(r.out().contains("precision:  f32; roles value, m, v"), r.out());
        assertTrue(r.out().contains("placement:  replica:2"), r.out());
        assertTrue(r.out().contains("files:      8 rank files, "), r.out());
        assertTrue(r.out().contains("every one present, its length and crc32c as the manifest records them"), r.out());
        assertTrue(r.out().contains("  blocks.3.moe.experts.3.w1 [16, "), r.out());
        Result s = run("checkpoint", "info", single.toString());
        assertEquals(0, s.code(), s.out() + s.err());
        assertTrue(s.out().contains("plan:       single device on 1 rank"), s.out());
    }

    @Test
    void theManifestIndexesEveryTensorOnceWithItsCopies() throws IOException {
        CheckpointStore.Manifest m = CheckpointStore.newest(world);
        Map<String, float[]> owned = assembleFromRankFiles(world, m.world());
        try (GptMoeModel reference = new GptMoeModel(CpuBackend.get(), modelConfig(), 1)) {
            Map<String, int[]> shapes = new LinkedHashMap<>();
            reference.parameters().forEach(p -> shapes.put(p.name(), p.value().shape()));
            assertEquals(shapes.keySet(), owned.keySet(), "the 8 ranks hold the single device's tensors");
            m.index().tensors().forEach(t -> assertArrayEquals(shapes.get(t.name()), t.shape(), t.name()));
        }
        long copies = m.index().tensors().stream().flatMap(t -> t.parts().stream()).filter(p -> p.copy()).count();
        assertTrue(copies > 0, "data-parallel replicas are copies");
        // rank = ep + 2 * (dp + 2 * stage): an expert on both EP ranks of a stage is a placement replica
        assertTrue(m.index().tensors().stream().anyMatch(t -> t.name().contains(".moe.experts.")
                && t.parts().stream().map(p -> p.rank() % 2).distinct().count() == 2), "an expert is replicated");
        for (var t : m.index().tensors()) {
            assertEquals(t.parts().stream().map(p -> p.slice()).distinct().count(), t.owners().size(),
                    t.name() + ": one owner per slice");
        }
    }

    private static GptMoeConfig modelConfig() {
        try (WorldCheckpoint c = WorldCheckpoint.open(single)) {
            return c.modelConfig();
        }
    }

    /**
     * Each global tensor put together from the rank files' value entries that are not copies,
     * read with the file headers alone (not the manifest's index); asserts each copy equals what
     * its owner holds.
     */
    private static Map<String, float[]> assembleFromRankFiles(Path dir, int worldSize) throws IOException {
        Map<String, float[]> full = new java.util.TreeMap<>();
        List<Runnable> copyChecks = new ArrayList<>();
        for (int r = 0; r < worldSize; r++) {
            Path file = new CheckpointStore(dir, r, worldSize, null).rankFile(4, r);
            Checkpoint.Header h = Checkpoint.readHeader(file);
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
                for (Checkpoint.Entry e : h.entries()) {
                    Checkpoint.Shard s = e.shard();
                    if (!e.role().equals("value") || s.tensor() == null) {
                        continue;
                    }
                    float[] slice = h.read(channel, e);
                    if (s.copy()) {
                        copyChecks.add(() -> assertArrayEquals(s.slice().of(full.get(s.tensor()), s.fullShape()), slice,
                                "a copy of " + s.tensor() + " holds its owner's values"));
                    } else {
                        float[] into = full.computeIfAbsent(s.tensor(),
                                k -> new float[Arrays.stream(s.fullShape()).reduce(1, Math::multiplyExact)]);
                        s.slice().place(slice, into, s.fullShape());
                    }
                }
            }
        }
        copyChecks.forEach(Runnable::run);
        return full;
    }

    @Test
    void exportsReadBackByAnIndependentReader() throws Exception {
        for (Path ck : List.of(single, world)) {
            Map<String, float[]> expected = assembleFromRankFiles(ck, CheckpointStore.newest(ck).world());
            for (String dtype : List.of("fp32", "bf16")) {
                Path file = dir.resolve(ck.getFileName() + "-" + dtype + ".safetensors");
                Result r = run("checkpoint", "export", ck.toString(), "--safetensors", file.toString(), "--dtype", dtype);
                assertEquals(0, r.code(), r.out() + r.err());
                assertTrue(r.out().startsWith("wrote " + file + ": " + expected.size() + " tensors"), r.out());
                Path dump = dir.resolve(ck.getFileName() + "-" + dtype + ".expected.json");
                Files.writeString(dump, dump(expected, dtype.equals("bf16") ? DType.BF16 : DType.F32,
                        ck == single ? "single device" : "pp=2,tp=1,ep=2,edp=2"));
                assertEquals("ok: " + expected.size() + " tensors, " + expected.values().stream()
                        .mapToInt(v -> v.length).sum() + " values", python(file, dump));
            }
        }
    }

    /** What the checker expects: each tensor's shape and stored bits, and the metadata's step and plan. */
    private static String dump(Map<String, float[]> tensors, DType dtype, String plan) throws IOException {
        CheckpointStore.Manifest m = CheckpointStore.newest(single);
        JsonObject root = new JsonObject();
        JsonObject meta = new JsonObject();
        meta.addProperty("format", "panamoe");
        meta.addProperty("step", "4");
        meta.addProperty("plan", plan);
        root.add("metadata", meta);
        JsonObject all = new JsonObject();
        for (var t : tensors.entrySet()) {
            JsonObject o = new JsonObject();
            o.addProperty("dtype", dtype == DType.F32 ? "F32" : "BF16");
            JsonArray shape = new JsonArray();
            for (int d : m.index().tensors().stream().filter(x -> x.name().equals(t.getKey())).findFirst()
                    .orElseThrow().shape()) {
                shape.add(d);
            }
            o.add("shape", shape);
            JsonArray bits = new JsonArray();
            for (float v : t.getValue()) {
                bits.add(dtype == DType.F32 ? Integer.toUnsignedLong(Float.floatToRawIntBits(v))
                        : Tensor.floatToBf16(v) & 0xffff);
            }
            o.add("bits", bits);
            all.add(t.getKey(), o);
        }
        root.add("tensors", all);
        return root.toString();
    }

    private static String python(Path file, Path expected) throws Exception {
        Process p = new ProcessBuilder("python3", CHECKER.toString(), file.toString(), expected.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    /**
     * The 8-rank runs' global tensors and AdamW moments, put together from their owners' slices,
     * are the single device's (within the plan-equivalence tolerance): expert tensors are named
     * after the expert their slot holds after the moves, and a replica's unused moments are not
     * taken for its expert's.
     */
    @Test
    void theEightRankCheckpointsHoldTheSingleDeviceModelAndItsMoments() {
        assertTrue(CheckpointStore.newest(moved).index().placements().stream()
                .anyMatch(p -> !p.endsWith("[0, 1, 2, 3]")), "greedy:1 moved experts");
        for (Path ck : List.of(world, moved, tensor)) {
            assertSameModel(ck);
        }
    }

    private static void assertSameModel(Path ck) {
        try (WorldCheckpoint one = WorldCheckpoint.open(single); WorldCheckpoint eight = WorldCheckpoint.open(ck)) {
            List<CheckpointIndex.LogicalTensor> a = one.index().tensors();
            List<CheckpointIndex.LogicalTensor> b = eight.index().tensors();
            assertEquals(a.stream().map(CheckpointIndex.LogicalTensor::name).toList(),
                    b.stream().map(CheckpointIndex.LogicalTensor::name).toList());
            for (int t = 0; t < a.size(); t++) {
                for (String role : List.of("value", "m", "v")) {
                    float[] x = one.read(a.get(t), role);
                    float[] y = eight.read(b.get(t), role);
                    double diff = 0;
                    double norm = 0;
                    for (int i = 0; i < x.length; i++) {
                        diff += (x[i] - y[i]) * (double) (x[i] - y[i]);
                        norm += x[i] * (double) x[i];
                    }
                    // another expert's tensors differ by about their own norm: a mislabelled one fails by far
                    assertTrue(Math.sqrt(diff) <= 1e-3 * Math.sqrt(norm) + 1e-12, ck.getFileName() + " "
                            + a.get(t).name() + " " + role + ": relative difference " + Math.sqrt(diff / norm));
                }
            }
        }
    }

    @Test
    void initFromReproducesTheExportedWeightsOnOneDeviceAndOnEveryRank() {
        Path file = dir.resolve("init.safetensors");
        assertEquals(0, run("checkpoint", "export", world.toString(), "--safetensors", file.toString()).code());
        try (SafeTensors.Reader weights = SafeTensors.open(file);
                GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig(), 99)) {
            InitialWeights.load(file, model.parameters());
            for (Parameter p : model.parameters()) {
                assertArrayEquals(weights.read(p.name()), p.value().toFloatArray(), p.name());
            }
        }
        GptMoeConfig modelConfig = modelConfig();
        List<Integer> checked = InJvmWorld.run(8, Duration.ofSeconds(60), comm -> {
            try (ProcessGroups groups = new ProcessGroups(new RankLayout(ParallelPlan.parse("pp=2,dp=2,ep=2", 8)), comm);
                    GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, 99, groups);
                    SafeTensors.Reader weights = SafeTensors.open(file)) {
                List<Checkpoint.Shard> shards = CheckpointShards.of(model);
                List<Parameter> params = model.parameters();
                InitialWeights.load(file, params, shards, false);
                for (int i = 0; i < params.size(); i++) {
                    Checkpoint.Shard s = shards.get(i);
                    assertArrayEquals(s.slice().of(weights.read(s.tensor()), s.fullShape()),
                            params.get(i).value().toFloatArray(), s.tensor());
                }
                return params.size();
            }
        });
        assertEquals(8, checked.size());
        // through the command line: the first step's loss is that of the file's weights, on any plan
        Path m1 = dir.resolve("init-single.jsonl");
        Path m8 = dir.resolve("init-world.jsonl");
        Path m0 = dir.resolve("no-init.jsonl");
        Result r = train(List.of("--steps", "1", "--init-from", file.toString(), "--metrics", m1.toString()));
        assertTrue(r.out().contains("initialised from " + file), r.out());
        train(list(PARALLEL, "--steps", "1", "--init-from", file.toString(), "--metrics", m8.toString()));
        train(List.of("--steps", "1", "--metrics", m0.toString()));
        double l1 = MetricsWriter.read(m1).getFirst().loss();
        double l8 = MetricsWriter.read(m8).getFirst().loss();
        double l0 = MetricsWriter.read(m0).getFirst().loss();
        assertEquals(l1, l8, 1e-5 * l1, "the same weights on one device and on 8 ranks");
        assertNotEquals(l0, l1, "the file's weights, not the seed's");
    }

    // ---- refusals ----

    /** A copy of the world checkpoint to damage. */
    private static Path copyOfWorld(String name) throws IOException {
        Path copy = dir.resolve(name);
        Files.createDirectories(copy);
        try (Stream<Path> files = Files.list(world)) {
            for (Path f : files.toList()) {
                Files.copy(f, copy.resolve(f.getFileName()));
            }
        }
        return copy;
    }

    /** Both commands refuse the directory in one line containing expected, and export writes nothing. */
    private static void assertRefused(Path ck, String expected) throws IOException {
        Path out = ck.resolveSibling(ck.getFileName() + ".safetensors");
        Files.writeString(out, "previous");
        for (String[] args : List.of(new String[] {"checkpoint", "info", ck.toString()},
                new String[] {"checkpoint", "export", ck.toString(), "--safetensors", out.toString()})) {
            Result r = run(args);
            assertEquals(1, r.code(), r.out() + r.err());
            assertEquals(1, r.err().strip().lines().count(), r.err());
            assertTrue(r.err().contains(expected), "'" + expected + "' not in " + r.err());
        }
        assertEquals("previous", Files.readString(out), "the previous file is left as it was");
        try (Stream<Path> siblings = Files.list(out.getParent())) {
            assertFalse(siblings.anyMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temporary file left");
        }
    }

    @Test
    void aMissingOrCorruptRankFileOrABadDirectoryIsRefused() throws IOException {
        Path missing = copyOfWorld("missing");
        String name = new CheckpointStore(missing, 3, 8, null).rankFile(4, 3).getFileName().toString();
        Files.delete(missing.resolve(name));
        assertRefused(missing, "is incomplete: rank 3's file " + name + " is missing");

        Path corrupt = copyOfWorld("corrupt");
        Path victim = new CheckpointStore(corrupt, 5, 8, null).rankFile(4, 5);
        byte[] bytes = Files.readAllBytes(victim);
        bytes[bytes.length - 3] ^= 0x10;
        Files.write(victim, bytes);
        assertRefused(corrupt, "checkpoint " + victim + " is not the file its manifest step-00000004.manifest.json lists");

        assertRefused(dir.resolve("nowhere"), "checkpoint directory " + dir.resolve("nowhere") + " does not exist");
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertRefused(empty, "holds no checkpoint");
    }

    @Test
    void exportRefusesABadOutputOrDtype() throws IOException {
        Path notADir = Files.writeString(dir.resolve("plain-file"), "x");
        Result r = run("checkpoint", "export", single.toString(), "--safetensors", notADir.resolve("w.safetensors").toString());
        assertEquals(1, r.code(), r.out() + r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("cannot write safetensors file " + notADir.resolve("w.safetensors")), r.err());
        r = run("checkpoint", "export", single.toString(), "--safetensors", dir.resolve("x.safetensors").toString(),
                "--dtype", "fp8");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("Invalid value for option '--dtype': expected fp32 or bf16, got fp8"), r.err());
        assertFalse(Files.exists(dir.resolve("x.safetensors")));
    }

    @Test
    void initFromRefusesWhatIsNotAFittingSafetensorsFile() throws IOException {
        Path text = Files.writeString(dir.resolve("notes.safetensors"), "these are not tensors at all");
        Path absent = dir.resolve("absent.safetensors");
        for (Path bad : List.of(text, absent)) {
            Result r = run(list(list(List.of("train"), MODEL.toArray(String[]::new)), "--steps", "1", "--init-from",
                    bad.toString()).toArray(String[]::new));
            assertEquals(2, r.code(), r.out() + r.err());
            assertTrue(r.err().startsWith("panamoe train: Invalid value for option '--init-from': " + bad), r.err());
            assertFalse(r.out().contains("training:"), r.out());
        }
        Path file = dir.resolve("other-model.safetensors");
        assertEquals(0, run("checkpoint", "export", single.toString(), "--safetensors", file.toString()).code());
        List<String> args = list(List.of("train"), MODEL.toArray(String[]::new));
        args.set(args.indexOf("--experts") + 1, "8");
        Result r = run(list(args, "--steps", "1", "--init-from", file.toString()).toArray(String[]::new));
        assertEquals(1, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("--init-from " + file + " does not fit this model: tensor 'blocks.0.moe.gate' has "
                + "shape [16, 4] there, [16, 8] here"), r.err());
        r = run("train", "--checkpoint", single.toString(), "--resume", "--init-from", file.toString());
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("--init-from starts a run from weights and --resume continues one"), r.err());
    }
}
