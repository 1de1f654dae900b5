package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {

    /** Where the checkpoint is trained once for all tests. */
    @TempDir
    static Path trained;
    /** Each test's copy of it. */
    @TempDir
    Path dir;

    private static byte[] bytes;
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
        TrainingConfig config = TinyRun.config().checkpointDir(trained).stopAt(3).build();
        try (GptMoeModel model = TinyRun.newModel(5); Trainer trainer = new Trainer(model, TinyRun.corpus(), config)) {
            trainer.run(m -> { });
            savedValues = TinyRun.values(model);
            savedMoments = moments(trainer);
        }
        bytes = Files.readAllBytes(trained.resolve(Checkpoint.FILE_NAME));
    }

    @BeforeEach
    void copyCheckpoint() throws IOException {
        file = dir.resolve(Checkpoint.FILE_NAME);
        Files.write(file, bytes);
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
            trainer.resume(file);
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

    /** Resuming {@code bad} into a fresh run fails with all the fragments and leaves that run exactly as it was. */
    private void assertRejected(Path bad, GptMoeConfig modelConfig, TrainingConfig trainingConfig,
            SyntheticCorpus corpus, String... fragments) {
        try (GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, 99);
                Trainer trainer = new Trainer(model, corpus, trainingConfig)) {
            List<float[]> before = TinyRun.values(model);
            CheckpointException e = assertThrows(CheckpointException.class, () -> trainer.resume(bad));
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

    private void assertRejected(byte[] content, String... fragments) throws IOException {
        Path bad = dir.resolve("bad.pmoe");
        Files.write(bad, content);
        assertRejected(bad, TinyRun.model(), config(), TinyRun.corpus(), fragments);
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
        assertRejected(dir.resolve("missing.pmoe"), TinyRun.model(), config(), TinyRun.corpus(), "does not exist");
    }

    @Test
    void anotherModelRunOrDataIsRejectedNamingTheDifference() {
        GptMoeConfig wider = TinyRun.model().toBuilder().hidden(32).build();
        assertRejected(file, wider, config(), TinyRun.corpus(), "does not match this run",
                "model hidden 16 in the checkpoint, 32 here", "tensor 'wte' (value) has shape [16, 16] in the checkpoint, [16, 32] here",
                "more tensors differ");
        GptMoeConfig moreExperts = TinyRun.model().toBuilder().experts(6).build();
        assertRejected(file, moreExperts, config(), TinyRun.corpus(), "model experts 4 in the checkpoint, 6 here",
                "of this model is missing from the checkpoint");
        assertRejected(file, TinyRun.model(), config().toBuilder().lr(2e-2f).build(), TinyRun.corpus(),
                "training lr 0.01 in the checkpoint, 0.02 here");
        SyntheticCorpus otherData = new SyntheticCorpus(TinyRun.corpus().config().withSeed(8));
        assertRejected(file, TinyRun.model(), config(), otherData, "data '" + TinyRun.corpus().describe()
                + "' in the checkpoint, '" + otherData.describe() + "' here");
        assertRejected(file, TinyRun.model(), config().toBuilder().steps(2).warmup(1).build(), TinyRun.corpus(),
                "is at step 3, outside this run's [0, 2]");
    }

    @Test
    void aWriteThatDiesHalfWayLeavesThePreviousCheckpointWhole() throws IOException {
        IOException crash = new IOException("simulated crash");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> Checkpoint.writeAtomically(file, channel -> {
            channel.write(ByteBuffer.wrap(bytes, 0, bytes.length / 2));
            throw crash;
        }));
        assertTrue(e.getMessage().contains("cannot write checkpoint " + file + ": simulated crash"), e.getMessage());
        assertArrayEquals(bytes, Files.readAllBytes(file));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "the failed writer removed its temporary file");
        }
        assertEquals(3, Checkpoint.read(file).step());
    }

    @Test
    void aTemporaryFileLeftByAKilledWriterIsIgnoredThenRemoved() throws IOException {
        // What `kill -9` during a write leaves: a partial temporary file beside the checkpoint.
        Path orphan = dir.resolve("." + Checkpoint.FILE_NAME + ".123456789.tmp");
        Files.write(orphan, Arrays.copyOf(bytes, bytes.length / 3));
        try (GptMoeModel model = TinyRun.newModel(99); Trainer trainer = new Trainer(model, TinyRun.corpus(), config())) {
            trainer.resume(file);
            assertSameArrays(savedValues, TinyRun.values(model));
            trainer.trainStep();
            trainer.saveCheckpoint();
        }
        assertTrue(Files.notExists(orphan), "the next write cleans up");
        assertEquals(4, Checkpoint.read(file).step());
    }
}
