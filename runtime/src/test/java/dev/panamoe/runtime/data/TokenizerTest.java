package dev.panamoe.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {

    private static final String TEXT = "Hello world! Grüße, 日本語 and emoji 🙂.\nA <|endoftext|> marker is plain text here.\n";

    @TempDir
    Path dir;

    @Test
    void everyTokenizerRoundTripsTextWithinItsVocabulary() {
        for (String name : Tokenizer.NAMES) {
            Tokenizer t = Tokenizer.of(name);
            int[] ids = t.encode(TEXT);
            assertEquals(TEXT, t.decode(ids), name);
            for (int id : ids) {
                assertTrue(id >= 0 && id < t.vocabSize(), name + ": id " + id);
            }
            if (!t.isBytes()) {
                assertTrue(ids.length < TEXT.getBytes(StandardCharsets.UTF_8).length / 2, name + " merges bytes: " + ids.length);
            }
        }
    }

    @Test
    void encodingsAreTheKnownOnes() {
        assertEquals(256, Tokenizer.of("bytes").vocabSize());
        assertEquals(50257, Tokenizer.of("gpt2").vocabSize());
        assertEquals(100277, Tokenizer.of("cl100k").vocabSize());
        assertArrayEquals(new int[] {15496, 995}, Tokenizer.of("gpt2").encode("Hello world"));
        assertArrayEquals(new int[] {9906, 1917}, Tokenizer.of("cl100k").encode("Hello world"));
        assertArrayEquals(new int[] {104, 195, 169}, Tokenizer.of("bytes").encode("hé"));
        assertEquals("<|endoftext|>", Tokenizer.of("gpt2").decode(new int[] {50256}));
    }

    @Test
    void idsWithoutATokenDecodeToNothingAndIdsOutsideTheVocabularyAreRefused() {
        Tokenizer cl100k = Tokenizer.of("cl100k");
        assertEquals("Hi", cl100k.decode(new int[] {13347, 100256, 100265}));
        var e = assertThrows(IllegalArgumentException.class, () -> cl100k.decode(new int[] {1, 100277}));
        assertTrue(e.getMessage().contains("ids[1]: 100277") && e.getMessage().contains("cl100k"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.of("bytes").decode(new int[] {-1}));
        assertTrue(e.getMessage().contains("ids[0]: -1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.of("gpt3"));
        assertEquals("tokenizer: unknown name 'gpt3'; known: bytes, gpt2, cl100k", e.getMessage());
    }

    @Test
    void aBpeCorpusSplitsAtACharacterAndReportsTokensPerByteAndItsUnigramLoss() throws IOException {
        // 11 bytes per line ("é" is two), 40 lines: the 10% cut is at byte 396, a line start.
        Path file = Files.writeString(dir.resolve("text.txt"), "the cat é\n".repeat(40));
        TextCorpus corpus = TextCorpus.open(file, Tokenizer.of("gpt2"), 4, 0.1, 1);
        int validationBytes = corpus.validationBytes();
        assertEquals(440, corpus.trainBytes() + validationBytes);
        assertEquals(50257, corpus.vocabSize());
        assertEquals(44, validationBytes);
        int[] line = Tokenizer.of("gpt2").encode("the cat é\n");
        assertEquals((double) 4 * line.length / 44, corpus.validationTokensPerByte(), 1e-12);
        // Unigram entropy of the validation tokens: each line's tokens are equally frequent when distinct.
        assertEquals(Math.log(line.length), corpus.unigramLoss(), 1e-9);
        Batch b = corpus.batch(Split.VALIDATION, 0, 3);
        for (int i = 0; i < b.tokens().length; i++) {
            assertTrue(contains(line, b.tokens()[i]), "token " + b.tokens()[i]);
        }
        assertTrue(corpus.describe().startsWith("text: ") && corpus.describe().contains("gpt2 tokens"), corpus.describe());
        Path cut = Files.writeString(dir.resolve("cut.txt"), "aé".repeat(30));
        // 51% held out: the cut at byte floor(90 * 0.49) = 44 is the second byte of an 'é'.
        TextCorpus split = TextCorpus.open(cut, Tokenizer.of("cl100k"), 2, 0.51, 1);
        assertEquals(90, split.trainBytes() + split.validationBytes());
        assertEquals(43, split.trainBytes(), "the cut moves back to the start of the 'é' it fell in");
        var e = assertThrows(IllegalArgumentException.class, () -> TextCorpus.open(cut, Tokenizer.of("gpt2"), 40, 0.5, 1));
        assertTrue(e.getMessage().contains("seqLen + 1 = 41 tokens") && e.getMessage().contains("gpt2 tokens"),
                e.getMessage());
    }

    private static boolean contains(int[] ids, int id) {
        for (int x : ids) {
            if (x == id) {
                return true;
            }
        }
        return false;
    }
}
