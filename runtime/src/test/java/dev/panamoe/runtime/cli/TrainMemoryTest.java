package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.runtime.cli.TrainCommandTest.Result;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.parallel.MemoryEstimate;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code train}'s memory estimate: oversized runs are refused before allocating, and --dry-run shows it. */
class TrainMemoryTest {
    /** Refused within this, where allocating would take minutes and end in the OOM killer. */
    private static final long REFUSAL_LIMIT_MS = 20_000;

    @TempDir
    Path dir;

    /** Each needs more than a TiB, more than any machine this runs on has. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"--layers 100000", "--hidden 4096 --experts 512 --layers 8", "--experts 100000 --hidden 512",
        "--world 64 --plan ep=64 --experts 64 --hidden 16384 --batch 64"})
    void oversizedRunsAreRefusedWithinSecondsWithBothNumbers(String options) {
        long start = System.nanoTime();
        Result r = TrainCommandTest.run(("train " + options).split(" "));
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertEquals(1, r.code(), r.out() + r.err());
        String err = r.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertTrue(err.matches("panamoe train: the run needs an estimated [0-9.]+ TiB \\(\\d+ parameters; .* on the "
                + "heaviest rank\\) but [0-9.]+ [GMT]iB is available \\(.*\\); reduce .*--dry-run"), err);
        assertTrue(ms < REFUSAL_LIMIT_MS, "refused after " + ms + " ms");
        assertFalse(r.out().contains("training:"), "nothing started: " + r.out());
    }

    @Test
    void sizeOptionsBeyondTheirLimitsAreRefused() {
        Result seq = TrainCommandTest.run("train", "--seq", "65");
        assertEquals(2, seq.code(), seq.err());
        assertTrue(seq.err().contains("Invalid value for option '--seq': 65 is above the maximum sequence length of "
                + "preset tiny, 64"), seq.err());
        int max = 8 * Runtime.getRuntime().availableProcessors();
        Result threads = TrainCommandTest.run("train", "--threads", Integer.toString(max + 1));
        assertEquals(2, threads.code(), threads.err());
        assertTrue(threads.err().contains("Invalid value for option '--threads': " + (max + 1) + " is outside [1, " + max
                + "]"), threads.err());
    }

    @Test
    void collectiveTimeoutMustBePositive() {
        Result r = TrainCommandTest.run("train", "--collective-timeout", "0");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("'--collective-timeout'") && r.err().contains("'0' is not a positive number of "
                + "seconds"), r.err());
    }

    @Test
    void dryRunPrintsTheParameterCountAndTheBreakdownAndTrainsNothing() {
        Path metrics = dir.resolve("m.jsonl");
        Result r = TrainCommandTest.run("train", "--dry-run", "--metrics", metrics.toString());
        assertEquals(0, r.code(), r.err());
        long parameters;
        try (GptMoeModel model = new GptMoeModel(CpuBackend.get(), GptMoeConfig.preset("tiny"), 1)) {
            parameters = model.parameters().stream().mapToLong(p -> p.value().numel()).sum();
        }
        List<String> lines = r.lines();
        assertTrue(lines.contains("parameters: " + parameters + " (108672 active per token)"), r.out());
        assertTrue(lines.contains("memory estimate of the one rank, " + parameters + " parameters on it, in fp32 "
                + "(requested):"), r.out());
        for (String part : List.of("parameters (fp32)", "gradients (fp32)", "AdamW moments m and v (fp32)",
                "attention scores (fp32), 1 micro-batch of 16 x 64 tokens", "activations (fp32), 1 micro-batch",
                "MoE workspaces (2 layers x 1, dropless worst case)", "total per rank")) {
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("  " + part) && l.matches(".* [0-9.]+ [KMG]iB")),
                    part + " missing in:\n" + r.out());
        }
        String params = lines.stream().filter(l -> l.startsWith("  parameters (fp32)")).findFirst().orElseThrow();
        assertTrue(params.endsWith(String.format(java.util.Locale.ROOT, "%.1f MiB", parameters * 4 / 1048576.0)), params);
        assertFalse(r.out().contains("training:"), r.out());
        assertFalse(Files.exists(metrics), "a dry run writes nothing");
    }

    /** bf16: f32 masters plus bf16 working copies, activations at 2 bytes, a smaller total than fp32's. */
    @Test
    void aBf16DryRunCountsTheWorkingCopiesAndNarrowActivations() {
        Result fp32 = TrainCommandTest.run("train", "--dry-run");
        Result bf16 = TrainCommandTest.run("train", "--dry-run", "--precision", "bf16");
        assertEquals(0, bf16.code(), bf16.err());
        assertTrue(bf16.out().contains("parameters on it, in bf16 (requested):"), bf16.out());
        String masters = bytesOf(bf16, "parameters (fp32 masters)");
        assertEquals(bytesOf(fp32, "parameters (fp32)"), masters);
        String copies = bytesOf(bf16, "working copies of the parameters (bf16)");
        // the printed sizes have three or four digits: 5% covers their rounding, not a missing halving
        assertEquals(value(masters) / 2, value(copies), 0.05 * value(copies), masters + " vs " + copies);
        String activations = bytesOf(bf16, "activations (bf16)");
        assertEquals(value(bytesOf(fp32, "activations (fp32)")) / 2, value(activations), 0.05 * value(activations),
                activations);
        assertTrue(value(bytesOf(bf16, "total per rank")) < value(bytesOf(fp32, "total per rank")), bf16.out());
    }

    /** The size on the line of the breakdown that starts with part, e.g. "1.2 MiB". */
    private static String bytesOf(Result r, String part) {
        String line = r.lines().stream().filter(l -> l.startsWith("  " + part)).findFirst()
                .orElseThrow(() -> new AssertionError(part + " missing in:\n" + r.out()));
        return line.substring(line.lastIndexOf(' ', line.length() - 5) + 1);
    }

    /** The bytes of a printed size ("1.5 KiB" is 1536), as {@link MemoryEstimate#bytes} writes them. */
    private static double value(String size) {
        String[] f = size.split(" ");
        int shift = List.of("B", "KiB", "MiB", "GiB", "TiB").indexOf(f[1]);
        assertTrue(f.length == 2 && shift >= 0, size);
        return Double.parseDouble(f[0]) * (1L << (10 * shift));
    }

    @Test
    void aParallelDryRunShowsTheHeaviestStageAndTheWorldsTotal() {
        Result r = TrainCommandTest.run("train", "--dry-run", "--world", "8", "--plan", "pp=2,dp=2,ep=2", "--batch", "16",
                "--micro-batches", "4");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("memory estimate of the heaviest rank (stage 0 of 2)"), r.out());
        assertTrue(r.out().contains("2 micro-batches of 1 x 64 tokens"), "1F1B keeps pp micro-batches on stage 0: "
                + r.out());
        assertTrue(r.lines().stream().anyMatch(l -> l.startsWith("  total of the 8 ranks")), r.out());
    }

    @Test
    void availableMemoryIsTheSmallerOfMemAvailableAndTheCgroupsRoom() throws IOException {
        Path proc = Files.createDirectories(dir.resolve("proc/self"));
        Files.writeString(dir.resolve("proc/meminfo"), "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n");
        Files.writeString(proc.resolve("cgroup"), "0::/job\n");
        Path cgroup = Files.createDirectories(dir.resolve("cgroup/job"));
        Files.writeString(cgroup.resolve("memory.max"), "max\n");
        Files.writeString(cgroup.resolve("memory.current"), "1000\n");
        AvailableMemory unlimited = AvailableMemory.read(dir.resolve("proc"), dir.resolve("cgroup"));
        assertEquals(20_000_000L * 1024, unlimited.bytes(), unlimited.source());
        assertTrue(unlimited.source().startsWith("MemAvailable"), unlimited.source());

        Files.writeString(cgroup.resolve("memory.max"), "4000000000\n");
        Files.writeString(cgroup.resolve("memory.current"), "1000000000\n");
        AvailableMemory limited = AvailableMemory.read(dir.resolve("proc"), dir.resolve("cgroup"));
        assertEquals(3_000_000_000L, limited.bytes(), limited.source());
        assertTrue(limited.source().contains("memory.max"), limited.source());

        Files.writeString(proc.resolve("cgroup"), "4:memory:/v1job\n");
        Path v1 = Files.createDirectories(dir.resolve("cgroup/memory/v1job"));
        Files.writeString(v1.resolve("memory.limit_in_bytes"), "2000000000\n");
        Files.writeString(v1.resolve("memory.usage_in_bytes"), "500000000\n");
        AvailableMemory cgroupV1 = AvailableMemory.read(dir.resolve("proc"), dir.resolve("cgroup"));
        assertEquals(1_500_000_000L, cgroupV1.bytes(), cgroupV1.source());
    }
}
