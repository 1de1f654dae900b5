package dev.panamoe.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TextCorpusTest {

    @TempDir
    Path dir;

    /** A file whose byte i is i: a window's first byte is its offset. */
    private Path countingFile(int size) throws IOException {
        byte[] bytes = new byte[size];
        for (int i = 0; i < size; i++) bytes[i] = (byte) i;
        return Files.write(dir.resolve("counting.bin"), bytes);
    }

    @Test
    void windowsAreContiguousStayInTheirSplitAndReachItsEdges() throws IOException {
        var corpus = TextCorpus.open(countingFile(250), 9, 0.2, 42);
        assertEquals(200, corpus.trainBytes());
        assertEquals(50, corpus.validationBytes());
        assertEquals(256, corpus.vocabSize());
        assertEquals(0, corpus.sourceCount());
        checkWindows(corpus.batch(Split.TRAIN, 0, 5_000), 0, 200);
        checkWindows(corpus.batch(Split.VALIDATION, 0, 2_000), 200, 250);
    }

    private static void checkWindows(Batch batch, int splitStart, int splitEnd) {
        int lowest = Integer.MAX_VALUE, highest = Integer.MIN_VALUE;
        for (int b = 0; b < batch.batchSize(); b++) {
            int offset = batch.token(b, 0);
            for (int t = 0; t <= batch.seqLen(); t++) assertEquals(offset + t, batch.token(b, t), "window " + b);
            lowest = Math.min(lowest, offset);
            highest = Math.max(highest, offset);
            assertEquals(Batch.NO_SOURCE, batch.sources()[b]);
        }
        assertEquals(splitStart, lowest);
        assertEquals(splitEnd - (batch.seqLen() + 1), highest);
    }

    @Test
    void batchesAreDeterministicPerPositionAndSeed() throws IOException {
        Path file = countingFile(250);
        var a = TextCorpus.open(file, 9, 0.2, 1);
        var b = TextCorpus.open(file, 9, 0.2, 1);
        assertArrayEquals(a.batch(Split.TRAIN, 77, 6).tokens(), b.batch(Split.TRAIN, 77, 6).tokens());
        int[] joined = Arrays.copyOf(a.batch(Split.TRAIN, 77, 2).tokens(), 6 * 10);
        System.arraycopy(a.batch(Split.TRAIN, 79, 4).tokens(), 0, joined, 20, 40);
        assertArrayEquals(a.batch(Split.TRAIN, 77, 6).tokens(), joined);
        var other = TextCorpus.open(file, 9, 0.2, 2);
        assertFalse(Arrays.equals(a.batch(Split.TRAIN, 0, 16).tokens(), other.batch(Split.TRAIN, 0, 16).tokens()));
    }

    @Test
    void defaultSplitHoldsOutTheLastTenPercent() throws IOException {
        var corpus = TextCorpus.open(countingFile(1000), 16, 3);
        assertEquals(900, corpus.trainBytes());
        assertEquals(100, corpus.validationBytes());
        assertTrue(corpus.describe().contains("counting.bin") && corpus.describe().contains("1000 bytes")
                && corpus.describe().contains("10%"), corpus.describe());
    }

    @Test
    void missingEmptyAndDirectoryFilesAreRejectedByName() throws IOException {
        Path missing = dir.resolve("nope.txt");
        var e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(missing, 8, 1));
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
        Path empty = Files.write(dir.resolve("empty.txt"), new byte[0]);
        e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(empty, 8, 1));
        assertTrue(e.getMessage().contains(empty.toString()) && e.getMessage().contains("empty (0 bytes)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(dir, 8, 1));
        assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
    }

    @Test
    void tooShortFileNamesItsSizeAndTheSizeNeeded() throws IOException {
        // seq 9 -> windows of 10 bytes; with 10% held out the validation split needs >= 10 bytes.
        Path shortFile = countingFile(50);
        var e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(shortFile, 9, 1));
        String message = e.getMessage();
        assertTrue(message.contains(shortFile.toString()) && message.contains("has 50 bytes") && message.contains("10%, 5 bytes)")
                && message.contains("at least 91 bytes"), message);
        var fits = TextCorpus.open(countingFile(91), 9, 1);
        assertEquals(10, fits.validationBytes());
        assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(countingFile(90), 9, 1));
        // the train split is the short one when most of the file is held out
        e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(countingFile(15), 9, 0.5, 1));
        assertTrue(e.getMessage().contains("train split (7 bytes)") && e.getMessage().contains("at least 20 bytes"), e.getMessage());
    }

    @Test
    void badArgumentsAreRejectedWithTheValue() throws IOException {
        Path file = countingFile(250);
        var e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(file, 0, 1));
        assertTrue(e.getMessage().contains("seqLen") && e.getMessage().contains("0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(file, 8, 1.0, 1));
        assertTrue(e.getMessage().contains("validationFraction") && e.getMessage().contains("1.0"), e.getMessage());
        var corpus = TextCorpus.open(file, 8, 1);
        e = assertThrows(IllegalArgumentException.class, () -> corpus.batch(Split.VALIDATION, Long.MAX_VALUE, 2));
        assertTrue(e.getMessage().contains("overflows"), e.getMessage());
    }
}
