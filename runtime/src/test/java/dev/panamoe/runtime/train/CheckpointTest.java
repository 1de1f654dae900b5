package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One rank's file ({@link Checkpoint}) and the commit protocol over a directory ({@link
 * CheckpointStore}) on a single device (a world of one rank).
 */
class CheckpointTest {

    /** Where the checkpoint is trained once for all tests. */
    @TempDir
    static Path trained;
    /** Each test's copy of it. */
    @TempDir
    Path dir;

    private static byte[] bytes;
    /** The rank file of step 2, which the commit of step 3 removed. */
    private static byte[] stepTwoBytes;
    private static byte[] manifestBytes;
    private static final String FILE = "step-00000003.rank-00000-of-00001.pmoe";
    private static final String MANIFEST = "step-00000003.manifest.json";
    /** Parameters and moments of the run that wrote the checkpoint, after its 3 steps. */
    private static List<float[]> savedValues;
    private static List<float[]> savedMoments;
    private Path file;

    private TrainingConfig config() {
        return TinyRun.config().checkpointDir(dir).build();
    }

    private static List<float[]> moments(Trainer trainer) {
        List<float[]> m = new ArrayList<>();
        for (AdamW.State s : trainer.optimizer().states()) {
            m.add(s.m().toFloatArray());
            m.add(s.v().toFloatArray());
        }
        return m;
    }

    @BeforeAll
    static void trainThreeStepsAndCheckpoint() throws IOException {
        TrainingConfig config = TinyRun.config().checkpointDir(trained).build();
        try (GptMoeModel model = TinyRun.newModel(5); Trainer trainer = new Trainer(model, TinyRun.corpus(), config)) {
            trainer.trainStep();
            trainer.trainStep();
            stepTwoBytes = Files.readAllBytes(trainer.saveCheckpoint());
            trainer.trainStep();
            assertEquals(trained.resolve(FILE), trainer.saveCheckpoint());
            savedValues = TinyRun.values(model);
            savedMoments = moments(trainer);
        }
        try (Stream<Path> files = Files.list(trained)) {
            assertEquals(Set.of(FILE, MANIFEST), files.map(p -> p.getFileName().toString()).collect(Collectors.toSet()),
                    "the commit of step 3 removed step 2's files");
        }
        bytes = Files.readAllBytes(trained.resolve(FILE));
        manifestBytes = Files.readAllBytes(trained.resolve(MANIFEST));
    }

    @BeforeEach
    void copyCheckpoint() throws IOException {
        file = dir.resolve(FILE);
        Files.write(file, bytes);
        Files.write(dir.resolve(MANIFEST), manifestBytes);
    }

    private static void assertSameArrays(List<float[]> expected, List<float[]> actual) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), "tensor " + i);
        }
    }

    @Test
    void roundTripRestoresParametersMomentsStepAndDataPosition() {
        try (GptMoeModel other = TinyRun.newModel(99); Trainer trainer = new Trainer(other, TinyRun.corpus(), config())) {
            trainer.resume();
            assertSameArrays(savedValues, TinyRun.values(other));
            assertSameArrays(savedMoments, moments(trainer));
            assertEquals(3, trainer.step());
            assertEquals(3L * config().batch(), trainer.dataPosition());
        }
        Checkpoint.Loaded loaded = Checkpoint.read(file);
        assertEquals("16", loaded.model().get("hidden"));
        assertEquals("0.01", loaded.training().get("lr"));
        assertEquals(TinyRun.corpus().describe(), loaded.data());
    }

    /** Resuming from {@link #dir} into a fresh run fails with all the fragments and leaves that run exactly as it was. */
    private void assertRejected(GptMoeConfig modelConfig, TrainingConfig trainingConfig, SyntheticCorpus corpus,
            String... fragments) {
        try (GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, 99);
                Trainer trainer = new Trainer(model, corpus, trainingConfig)) {
            List<float[]> before = TinyRun.values(model);
            CheckpointException e = assertThrows(CheckpointException.class, trainer::resume);
            for (String fragment : fragments) {
                assertTrue(e.getMessage().contains(fragment), "'" + fragment + "' not in: " + e.getMessage());
            }
            assertSameArrays(before, TinyRun.values(model));
            for (float[] m : moments(trainer)) {
                assertArrayEquals(new float[m.length], m, "moments untouched");
            }
            assertEquals(0, trainer.step());
            assertEquals(0, trainer.dataPosition());
        }
    }

    /** The step's rank file replaced by content is refused. */
    private void assertRejected(byte[] content, String... fragments) throws IOException {
        Files.write(file, content);
        assertRejected(TinyRun.model(), config(), TinyRun.corpus(), fragments);
    }

    private String lastParameter() {
        try (GptMoeModel model = TinyRun.newModel(1)) {
            return model.parameters().getLast().name();
        }
    }

    @Test
    void truncatedFilesNameWhereTheyEnd() throws IOException {
        assertRejected(Arrays.copyOf(bytes, 10), "is truncated: 10 bytes");
        assertRejected(Arrays.copyOf(bytes, 200), "is truncated or corrupted: its header length");
        // The last parameter's v is its last tensor; 100 bytes short cut into its m as well (16 floats each).
        String last = lastParameter();
        assertRejected(Arrays.copyOf(bytes, bytes.length - 100), "is truncated: " + (bytes.length - 100) + " bytes",
                "describes " + bytes.length, "tensor '" + last + "' (m) and the 1 after it are incomplete");
        assertRejected(Arrays.copyOf(bytes, bytes.length - 1), "tensor '" + last + "' (v) is incomplete");
    }

    private static byte[] flipped(int index) {
        byte[] copy = bytes.clone();
        copy[index] ^= 0x10;
        return copy;
    }

    @Test
    void aFlippedByteFailsTheChecksumOfItsTensorOrOfTheHeader() throws IOException {
        String last = lastParameter();
        assertRejected(flipped(bytes.length - 1), "is corrupted: tensor '" + last + "' (v) fails its checksum");
        int headerLength = ByteBuffer.wrap(bytes, 12, 4).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt();
        int dataStart = 16 + headerLength + 4;
        // The first tensor is wte's value: a byte inside it.
        assertRejected(flipped(dataStart + 5), "tensor 'wte' (value) fails its checksum");
        assertRejected(flipped(40), "is corrupted: its header fails its checksum");
        assertRejected(flipped(13), "header"); // the header length itself
        assertRejected(Arrays.copyOf(bytes, bytes.length + 3), "3 unexpected bytes after its last tensor");
        assertRejected("not a checkpoint at all, just text".getBytes(), "is not a PanaMoE checkpoint");
        Files.delete(file);
        assertRejected(TinyRun.model(), config(), TinyRun.corpus(), file + " does not exist");
    }

    /** The header of the file: its tensors in order, each with its name and role. */
    private static List<JsonObject> tensorsOf(byte[] content) {
        int headerLength = ByteBuffer.wrap(content, 12, 4).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt();
        String header = new String(content, 16, headerLength, StandardCharsets.UTF_8);
        List<JsonObject> tensors = new ArrayList<>();
        JsonParser.parseString(header).getAsJsonObject().getAsJsonArray("tensors")
                .forEach(t -> tensors.add(t.getAsJsonObject()));
        return tensors;
    }

    /**
     * Every role (value, m, v) of the first, a middle and the last parameter: a byte flipped in the
     * middle of that tensor alone is refused, naming it (a reader that skipped one role's checksum
     * would pass the other roles' checks and fail here).
     */
    @Test
    void aFlippedByteInAnyTensorOfAnyRoleIsRefusedNamingThatTensor() throws IOException {
        List<JsonObject> tensors = tensorsOf(bytes);
        int headerLength = ByteBuffer.wrap(bytes, 12, 4).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt();
        long[] offsets = new long[tensors.size()];
        long offset = 16 + headerLength + 4;
        for (int i = 0; i < tensors.size(); i++) {
            offsets[i] = offset;
            long numel = 1;
            for (var d : tensors.get(i).getAsJsonArray("shape")) {
                numel *= d.getAsLong();
            }
            offset += 4 * numel;
        }
        assertEquals(bytes.length, offset, "the header describes the whole file");
        int parameters = tensors.size() / 3;
        int checked = 0;
        for (int parameter : new int[] {0, parameters / 2, parameters - 1}) {
            for (int role = 0; role < 3; role++) {
                int i = 3 * parameter + role;
                JsonObject t = tensors.get(i);
                assertEquals(List.of("value", "m", "v").get(role), t.get("role").getAsString());
                long end = i + 1 < tensors.size() ? offsets[i + 1] : bytes.length;
                assertRejected(flipped((int) ((offsets[i] + end) / 2)), "is corrupted: tensor '"
                        + t.get("name").getAsString() + "' (" + t.get("role").getAsString() + ") fails its checksum");
                checked++;
            }
        }
        assertEquals(9, checked);
    }

    @Test
    void anotherModelRunOrDataIsRejectedNamingTheDifference() {
        GptMoeConfig wider = TinyRun.model().toBuilder().hidden(32).build();
        assertRejected(wider, config(), TinyRun.corpus(), "does not match this run",
                "model hidden 16 in the checkpoint, 32 here", "tensor 'wte' (value) has shape [16, 16] in the checkpoint, [16, 32] here",
                "more tensors differ");
        GptMoeConfig moreExperts = TinyRun.model().toBuilder().experts(6).build();
        assertRejected(moreExperts, config(), TinyRun.corpus(), "model experts 4 in the checkpoint, 6 here",
                "of this model is missing from the checkpoint");
        assertRejected(TinyRun.model(), config().toBuilder().lr(2e-2f).build(), TinyRun.corpus(),
                "training lr 0.01 in the checkpoint, 0.02 here");
        SyntheticCorpus otherData = new SyntheticCorpus(TinyRun.corpus().config().withSeed(8));
        assertRejected(TinyRun.model(), config(), otherData, "data '" + TinyRun.corpus().describe()
                + "' in the checkpoint, '" + otherData.describe() + "' here");
        assertRejected(TinyRun.model(), config().toBuilder().steps(2).warmup(1).build(), TinyRun.corpus(),
                "is at step 3, outside this run's [0, 2]");
    }

    @Test
    void aWriteThatDiesHalfWayLeavesThePreviousCheckpointWhole() throws IOException {
        IOException crash = new IOException("simulated crash");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> Checkpoint.writeAtomically(file, "checkpoint", channel -> {
            channel.write(ByteBuffer.wrap(bytes, 0, bytes.length / 2));
            throw crash;
        }));
        assertTrue(e.getMessage().contains("cannot write checkpoint " + file + ": simulated crash"), e.getMessage());
        assertArrayEquals(bytes, Files.readAllBytes(file));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(Set.of(file, dir.resolve(MANIFEST)), files.collect(Collectors.toSet()),
                    "the failed writer removed its temporary file");
        }
        assertEquals(3, Checkpoint.read(file).step());
    }

    @Test
    void aTemporaryFileLeftByAKilledWriterIsIgnoredThenRemoved() throws IOException {
        // What `kill -9` during a write leaves: a partial temporary file beside the checkpoint.
        Path orphan = dir.resolve("." + FILE + ".123456789.tmp");
        Files.write(orphan, Arrays.copyOf(bytes, bytes.length / 3));
        // And what it leaves during the next step's write: a rank file without its manifest.
        Path uncommitted = dir.resolve("step-00000004.rank-00000-of-00001.pmoe");
        Files.write(uncommitted, bytes);
        try (GptMoeModel model = TinyRun.newModel(99); Trainer trainer = new Trainer(model, TinyRun.corpus(), config())) {
            trainer.resume();
            assertEquals(3, trainer.step(), "the newest committed step");
            assertSameArrays(savedValues, TinyRun.values(model));
            trainer.trainStep();
            assertEquals(uncommitted, trainer.saveCheckpoint());
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(Set.of("step-00000004.rank-00000-of-00001.pmoe", "step-00000004.manifest.json"),
                    files.map(p -> p.getFileName().toString()).collect(Collectors.toSet()),
                    "the commit of step 4 removed step 3's files and the orphan");
        }
        assertEquals(4, Checkpoint.read(uncommitted).step());
        assertEquals(4, CheckpointStore.newest(dir).step());
    }

    @Test
    void aRankFileThatIsNotTheOneItsManifestListsIsRefused() throws IOException {
        // A whole, valid file of another step in the place of this step's.
        assertRejected(stepTwoBytes, file + " holds step 2, but its manifest " + MANIFEST + " step 3");
        // The right step, but not the bytes that were committed.
        Files.write(file, bytes);
        String manifest = new String(manifestBytes, StandardCharsets.UTF_8);
        String tampered = manifest.replace("\"bytes\":" + bytes.length, "\"bytes\":" + (bytes.length + 1));
        assertTrue(!tampered.equals(manifest), manifest);
        Files.writeString(dir.resolve(MANIFEST), tampered);
        assertRejected(TinyRun.model(), config(), TinyRun.corpus(), file + " is not the file its manifest "
                + MANIFEST + " lists: " + bytes.length + " bytes with crc32c", (bytes.length + 1) + " bytes with crc32c");
        Files.writeString(dir.resolve(MANIFEST), manifest.substring(0, manifest.length() / 2));
        assertRejected(TinyRun.model(), config(), TinyRun.corpus(), "checkpoint manifest " + dir.resolve(MANIFEST)
                + " is corrupted");
        Files.delete(dir.resolve(MANIFEST));
        assertRejected(TinyRun.model(), config(), TinyRun.corpus(), "no checkpoint to resume in " + dir);
    }

    @Test
    void aCheckpointOfAnotherWorldSizeIsRefused() {
        CheckpointStore twoRanks = new CheckpointStore(dir, 0, 2, (b, c) -> {
            throw new AssertionError("not saving");
        });
        CheckpointException e = assertThrows(CheckpointException.class, twoRanks::load);
        assertEquals("checkpoint " + dir.resolve(MANIFEST) + " was written by 1 ranks; this run has 2", e.getMessage());
    }

    @Test
    void ranksThatResumedDifferentStepsAreRefusedNamingEachRanksStep() {
        CheckpointStore.checkSameStep(new int[] {12, 12, 12, 12});
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> CheckpointStore.checkSameStep(new int[] {83, 82, 83, 82}));
        assertEquals("the ranks resumed from different steps: rank 0 step 83, rank 1 step 82, rank 2 step 83, "
                + "rank 3 step 82", e.getMessage());
    }
}
