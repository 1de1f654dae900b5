package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Device;
import dev.panamoe.runtime.train.Precision;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class TrainCommandTest {

    @TempDir
    Path dir;

    record Result(int code, String out, String err) {
        List<String> lines() {
            return out.lines().toList();
        }
    }

    /** Runs the command line as ./panamoe does, capturing what it prints. */
    static Result run(String... args) {
        CommandLine cmd = Main.commandLine();
        StringWriter err = new StringWriter();
        cmd.setErr(new PrintWriter(err, true));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream saved = System.out;
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            return new Result(cmd.execute(args), out.toString(StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(saved);
        }
    }

    private static void assertUsageError(String expected, String... args) {
        Result r = run(args);
        assertEquals(2, r.code(), r.err());
        String err = r.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertTrue(err.startsWith("panamoe train: "), err);
        assertTrue(err.contains(expected), "'" + expected + "' not in: " + err);
        assertTrue(err.endsWith("(see 'panamoe train --help')"), err);
    }

    @Test
    void usageErrorsAreOneLineNamingTheOption() {
        assertUsageError("'--steps': 'abc' is not an int", "train", "--steps", "abc");
        assertUsageError("Unknown option: '--bogus'", "train", "--bogus");
        assertUsageError("Invalid value for option '--batch': must be >= 1, got 0", "train", "--batch", "0");
        assertUsageError("Invalid value for option '--micro-batches': must divide batch=6, got 4", "train", "--batch", "6",
                "--micro-batches", "4");
        assertUsageError("Invalid value for option '--min-lr': must be in [0, lr=0.001], got 0.002", "train", "--lr",
                "1e-3", "--min-lr", "2e-3");
        assertUsageError("Invalid value for option '--hidden': must be divisible by heads=4, got 30", "train", "--hidden", "30");
        assertUsageError("Invalid value for option '--top-k'", "train", "--experts", "4", "--top-k", "5");
        assertUsageError("Invalid value for option '--preset': unknown name 'huge'", "train", "--preset", "huge");
        assertUsageError("'--capacity-factor'", "train", "--capacity-factor", "-1");
        assertUsageError("Invalid value for option '--threads': must be >= 1, got 0", "train", "--threads", "0");
        assertUsageError("Invalid value for option '--precision': expected fp32, bf16 or auto, got \"fp16\"", "train",
                "--precision", "fp16");
        assertUsageError("Invalid value for option '--grad-reduce': bf16 sums the gradients of a bf16 run, but precision "
                + "is fp32", "train", "--grad-reduce", "bf16");
        assertUsageError("Invalid value for option '--grad-reduce': must be fp32 or bf16, got auto", "train",
                "--precision", "bf16", "--grad-reduce", "auto");
        assertUsageError("--resume needs --checkpoint DIR", "train", "--resume");
        assertUsageError("--stop-at needs --checkpoint DIR", "train", "--stop-at", "3");
        assertUsageError("Invalid value for option '--stop-at': must be in [1, steps=10], got 11", "train", "--steps", "10",
                "--stop-at", "11", "--checkpoint", "ck");
    }

    @Test
    void aFailedRunEndsWithItsMessage() {
        Result r = run("train", "--data", dir.resolve("missing.txt").toString());
        assertEquals(1, r.code());
        assertEquals("panamoe train: data file " + dir.resolve("missing.txt") + " does not exist", r.err().strip());
    }

    private String[] tinyRun(String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "--layers", "2", "--hidden", "16", "--heads", "2",
                "--experts", "4", "--seq", "16", "--steps", "4", "--batch", "4", "--micro-batches", "2", "--warmup", "1",
                "--eval-every", "2", "--eval-batches", "1", "--metrics", dir.resolve("m.jsonl").toString(), "--report",
                dir.resolve("report").toString(), "--checkpoint", dir.resolve("ck").toString()));
        args.addAll(Arrays.asList(extra));
        return args.toArray(String[]::new);
    }

    @Test
    void trainStopsResumesAndWritesMetricsReportAndSummary() throws IOException {
        int threads = CpuBackend.get().numThreads();
        Result first;
        try {
            first = run(tinyRun("--stop-at", "2", "--threads", "1"));
            assertEquals(1, CpuBackend.get().numThreads());
        } finally {
            CpuBackend.get().setNumThreads(threads);
        }
        assertEquals(0, first.code(), first.err());
        assertTrue(first.out().contains("stopped at step 2 of 4; continue with --checkpoint " + dir.resolve("ck")
                + " --resume"), first.out());
        assertEquals(2, Files.readAllLines(dir.resolve("m.jsonl")).size());

        // The checkpoint's own settings: nothing but where it is.
        Result second = run("train", "--checkpoint", dir.resolve("ck").toString(), "--resume");
        assertEquals(0, second.code(), second.err());
        assertTrue(second.out().contains("resumed from " + dir.resolve("ck") + " at step 2"), second.out());
        List<String> metrics = Files.readAllLines(dir.resolve("m.jsonl"));
        assertEquals(4, metrics.size());
        for (int s = 1; s <= 4; s++) {
            JsonObject json = JsonParser.parseString(metrics.get(s - 1)).getAsJsonObject();
            assertEquals(s, json.get("step").getAsInt());
            for (String key : List.of("loss", "val_loss", "tokens_per_s", "aux_loss", "expert_counts")) {
                assertTrue(json.has(key), key + " missing: " + metrics.get(s - 1));
            }
            assertEquals(s % 2 == 0, !json.get("val_loss").isJsonNull(), metrics.get(s - 1));
            assertEquals(2, json.getAsJsonArray("expert_counts").size(), "two MoE layers");
            assertEquals(4, json.getAsJsonArray("expert_counts").get(1).getAsJsonArray().size(), "four experts");
            assertEquals(0, json.get("placement_changes").getAsInt(), "single device: " + metrics.get(s - 1));
        }
        assertTrue(Files.isRegularFile(dir.resolve("report").resolve("index.html")));
        assertTrue(Files.isRegularFile(dir.resolve("report").resolve("specialisation-1.png")));
        assertSummaryEnding(second.lines());
        assertTrue(first.out().contains(", 1 thread\n"), "singular: " + first.out());
        assertTrue(first.out().contains("training: 4 steps of 4 x 16 tokens in 2 micro-batches, lr "), first.out());
        // the console and the report print the same share of the gap
        String gap = second.lines().getLast().substring("gap closed: ".length());
        String html = Files.readString(dir.resolve("report").resolve("index.html"));
        assertTrue(html.contains("<th>gap closed</th><td>" + gap + "</td>"), gap);
        // the report's settings are named as the options are given
        assertTrue(html.contains("<th>--micro-batches</th><td>2</td>") && !html.contains("microBatches"), html);
    }

    /**
     * A bf16 run says so in its header and report; resumed without --precision it stays bf16, and
     * resumed with --precision fp32 it says that it switches (the checkpoint holds the f32 masters).
     */
    @Test
    void aBf16RunSaysItsPrecisionAndResumesUnderEither() throws IOException {
        Result first = run(tinyRun("--stop-at", "1", "--precision", "bf16"));
        assertEquals(0, first.code(), first.err());
        assertTrue(first.out().contains("precision: bf16 (requested); bf16 weights and activations (f32 masters, "
                + "gradients and moments; router, softmaxes, norm statistics and loss in f32)\n"), first.out());
        Result second = run("train", "--checkpoint", dir.resolve("ck").toString(), "--resume", "--stop-at", "2");
        assertEquals(0, second.code(), second.err());
        assertTrue(second.out().contains("precision: bf16 (requested)"), second.out());
        Result third = run("train", "--checkpoint", dir.resolve("ck").toString(), "--resume", "--precision", "fp32");
        assertEquals(0, third.code(), third.err());
        assertTrue(third.out().contains("--resume: the checkpoint trained in bf16, this run continues in fp32 (the f32 "
                + "masters and moments carry over)\n"), third.out());
        assertTrue(third.out().contains("precision: fp32 (requested)\n"), third.out());
        assertSummaryEnding(third.lines());
        String html = Files.readString(dir.resolve("report").resolve("index.html"));
        assertTrue(html.contains("<th>precision</th><td>fp32 (requested)</td>"), html);
    }

    /** auto says what it resolved to on this machine, and why. */
    @Test
    void autoSaysWhatItPicked() {
        Result r = run("train", "--layers", "2", "--hidden", "16", "--heads", "2", "--experts", "4", "--seq", "16",
                "--steps", "2", "--batch", "4", "--eval-every", "0", "--eval-batches", "1", "--precision", "auto");
        assertEquals(0, r.code(), r.err());
        Precision.Resolved picked = Precision.AUTO.resolve(Device.CPU);
        assertTrue(picked.reason().startsWith("auto: "), picked.reason());
        assertTrue(r.out().contains("precision: " + picked), r.out());
    }

    /** The last four lines, exactly as the demo's contract says. */
    static void assertSummaryEnding(List<String> lines) {
        List<String> last = lines.subList(lines.size() - 4, lines.size());
        assertTrue(last.get(0).matches("unigram loss: \\d+\\.\\d{4}"), last.toString());
        assertTrue(last.get(1).matches("floor: \\d+\\.\\d{4}"), last.toString());
        assertTrue(last.get(2).matches("final val loss: \\d+\\.\\d{4}"), last.toString());
        assertTrue(last.get(3).matches("gap closed: -?\\d+\\.\\d%"), last.toString());
    }

    @Test
    void demoPrintsTheSummaryLinesAndWritesItsReport() {
        Result r = run("demo", "--steps", "2", "--report", dir.resolve("demo").toString(), "--metrics",
                dir.resolve("demo.jsonl").toString());
        assertEquals(0, r.code(), r.err());
        assertSummaryEnding(r.lines());
        assertTrue(r.out().contains("unigram loss: 4.0954"), r.out());
        assertTrue(Files.isRegularFile(dir.resolve("demo").resolve("index.html")));
    }
}
