package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code train --data --tokenizer} then {@code sample} from its checkpoint, as a user runs them. */
class SampleCommandTest {

    private static final String TEXT = """
            The quick brown fox jumps over the lazy dog. A stitch in time saves nine.
            All that glitters is not gold. Where there is a will, there is a way.
            """;

    private static final Pattern RATE = Pattern.compile("generated (\\d+) tokens in [0-9.]+ s \\(with the (\\d+)-token "
            + "prompt\\): ([0-9.]+) tokens/s");

    @TempDir
    Path dir;

    private Path textFile() throws IOException {
        return Files.writeString(dir.resolve("text.txt"), TEXT.repeat(12));
    }

    /** The text between the two "----" lines. */
    private static String sampled(Result r) {
        List<String> lines = r.lines();
        int first = lines.indexOf("----");
        int last = lines.lastIndexOf("----");
        assertTrue(first >= 0 && last > first, r.out());
        return String.join("\n", lines.subList(first + 1, last));
    }

    @Test
    void trainsOnTextWithGpt2AndSamplesFromTheCheckpoint() throws IOException {
        Path ck = dir.resolve("ck");
        Result train = TrainCommandTest.run("train", "--data", textFile().toString(), "--tokenizer", "gpt2",
                "--layers", "1", "--hidden", "32", "--heads", "2", "--experts", "4", "--seq", "16", "--batch", "4",
                "--steps", "4", "--eval-every", "2", "--eval-batches", "1", "--checkpoint", ck.toString(),
                "--report", dir.resolve("report").toString());
        assertEquals(0, train.code(), train.err() + train.out());
        assertTrue(train.out().contains("vocab 50257"), train.out());
        assertTrue(train.out().contains("gpt2 tokens"), train.out());
        // one short sample at each evaluation (steps 2 and 4), the same for the same seed
        assertEquals(2, train.lines().stream().filter(l -> l.startsWith("sample at step ")).count(), train.out());
        Matcher unigram = Pattern.compile("unigram loss: ([0-9.]+) \\(([0-9.]+) bits per byte\\)").matcher(train.out());
        assertTrue(unigram.find(), train.out());
        assertTrue(Pattern.compile("final val loss: [0-9.]+ \\([0-9.]+ bits per byte\\)").matcher(train.out()).find(),
                train.out());
        String html = Files.readString(dir.resolve("report").resolve("index.html"));
        assertTrue(html.contains("unigram loss, bits per byte") && html.contains("The dashed line is the loss of the best"
                + " unigram model"), "the report names the one line it draws");
        assertFalse(html.contains("loss floor (the expected loss"), "text data has no floor to describe");

        String[] sample = {"sample", "--checkpoint", ck.toString(), "--prompt", "The quick", "--tokens", "12",
            "--top-k", "20", "--seed", "7"};
        Result a = TrainCommandTest.run(sample);
        assertEquals(0, a.code(), a.err() + a.out());
        assertTrue(a.out().contains("tokenizer gpt2") && a.out().contains("(step 4)"), a.out());
        String text = sampled(a);
        assertTrue(text.startsWith("The quick"), text);
        Matcher rate = RATE.matcher(a.out());
        assertTrue(rate.find(), a.out());
        assertEquals("12", rate.group(1));
        assertEquals("2", rate.group(2), "'The quick' is two GPT-2 tokens");
        assertTrue(Double.parseDouble(rate.group(3)) > 0, a.out());
        assertEquals(text, sampled(TrainCommandTest.run(sample)), "the same seed draws the same text");
        sample[sample.length - 1] = "8";
        Result other = TrainCommandTest.run(sample);
        assertNotEquals(text, sampled(other), "another seed draws other text");
        Result greedy = TrainCommandTest.run("sample", "--checkpoint", ck.toString(), "--tokens", "6",
                "--temperature", "0", "--seed", "1");
        Result greedy2 = TrainCommandTest.run("sample", "--checkpoint", ck.toString(), "--tokens", "6",
                "--temperature", "0", "--seed", "2");
        assertEquals(sampled(greedy), sampled(greedy2), "temperature 0 is greedy: the seed does not matter");
    }

    @Test
    void aDataParallelAndAShardedCheckpointSampleOnOneDevice() throws IOException {
        String[] common = {"train", "--layers", "2", "--hidden", "16", "--heads", "2", "--experts", "4", "--seq", "8",
            "--batch", "4", "--steps", "2", "--eval-batches", "1", "--world", "2"};
        Path dp = dir.resolve("dp");
        Result train = TrainCommandTest.run(concat(common, "--checkpoint", dp.toString()));
        assertEquals(0, train.code(), train.err() + train.out());
        Result r = TrainCommandTest.run("sample", "--checkpoint", dp.toString(), "--tokens", "5", "--prompt", "3 1 4");
        assertEquals(0, r.code(), r.err() + r.out());
        assertTrue(r.out().contains("step-00000002.manifest.json (step 2)") && r.out().contains("tokenizer none (token ids)"),
                r.out());
        assertTrue(sampled(r).matches("3 1 4( \\d+){5}"), sampled(r));

        Path ep = dir.resolve("ep");
        train = TrainCommandTest.run(concat(common, "--plan", "ep=2", "--checkpoint", ep.toString()));
        assertEquals(0, train.code(), train.err() + train.out());
        r = TrainCommandTest.run("sample", "--checkpoint", ep.toString(), "--tokens", "5", "--prompt", "3 1 4");
        assertEquals(0, r.code(), r.err() + r.out());
        assertTrue(sampled(r).matches("3 1 4( \\d+){5}"), sampled(r));
    }

    @Test
    void badArgumentsAreOneLineErrorsNamingTheOption() throws IOException {
        Path ck = dir.resolve("ck");
        Result train = TrainCommandTest.run("train", "--data", textFile().toString(), "--layers", "1", "--hidden", "16",
                "--heads", "2", "--experts", "2", "--seq", "8", "--batch", "2", "--steps", "1", "--eval-batches", "1",
                "--checkpoint", ck.toString());
        assertEquals(0, train.code(), train.err() + train.out());
        assertTrue(train.out().contains("vocab 256"), "bytes is the default tokenizer: " + train.out());
        String c = ck.toString();
        assertUsageError("'--tokens': must be >= 1, got 0", "sample", "--checkpoint", c, "--tokens", "0");
        assertUsageError("'--temperature': must be a finite number >= 0, got -1", "sample", "--checkpoint", c,
                "--temperature", "-1");
        assertUsageError("'--top-k': must be >= 1, got 0", "sample", "--checkpoint", c, "--top-k", "0");
        assertUsageError("'--prompt': must hold at least one token", "sample", "--checkpoint", c, "--prompt", "");
        assertUsageError("'--checkpoint': checkpoint directory " + dir.resolve("nope") + " does not exist", "sample",
                "--checkpoint", dir.resolve("nope").toString());
        assertUsageError("'--checkpoint': checkpoint directory " + dir + " holds no checkpoint", "sample",
                "--checkpoint", dir.toString());
        assertUsageError("Missing required option: '--checkpoint=DIR'", "sample");
        Result r = TrainCommandTest.run("train", "--tokenizer", "gpt2", "--steps", "1");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--tokenizer needs --data FILE"), r.err());
        r = TrainCommandTest.run("train", "--data", textFile().toString(), "--tokenizer", "gpt3", "--steps", "1");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("Invalid value for option '--tokenizer': unknown name 'gpt3'; known: bytes, gpt2, "
                + "cl100k"), r.err());
    }

    private static void assertUsageError(String expected, String... args) {
        Result r = TrainCommandTest.run(args);
        assertEquals(2, r.code(), r.err() + r.out());
        String err = r.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertTrue(err.startsWith("panamoe sample: "), err);
        assertTrue(err.contains(expected), "'" + expected + "' not in: " + err);
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
