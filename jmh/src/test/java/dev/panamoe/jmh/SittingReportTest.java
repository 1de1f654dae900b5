package dev.panamoe.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bench sitting's plan and its table, from a made-up sitting folder whose ratios are known. */
class SittingReportTest {

    /** One JMH result whose iterations' median is `median` (time, or GFLOP/s as ops/ms); its mean is off on purpose. */
    private static String result(String benchmark, Map<String, String> params, String unit, double median) {
        String ps = params.entrySet().stream().map(e -> "\"" + e.getKey() + "\": \"" + e.getValue() + "\"")
                .collect(Collectors.joining(", "));
        return String.format(Locale.ROOT, """
                {"benchmark": "dev.panamoe.jmh.%s", "mode": "%s", "threads": 1, "vmName": "OpenJDK 64-Bit Server VM",
                 "vmVersion": "25.0.3+9-LTS", "params": {%s},
                 "primaryMetric": {"score": %s, "scoreUnit": "%s",
                   "scorePercentiles": {"0.0": %s, "50.0": %s, "100.0": %s}}}""",
                benchmark, unit.startsWith("ops/") ? "thrpt" : "avgt", ps, median * 1.3, unit, median * 0.9, median, median * 1.1);
    }

    private static String array(String... results) {
        return "[" + String.join(",\n", results) + "]";
    }

    private static final String ANCHORS = """
            {"tool": "torch_cpu_anchors", "quick": false, "reps": 5,
             "environment": {"torch": "2.13.0+cpu", "numpy": "2.4.6", "torch_cpu_capability": "AVX512",
               "numpy_blas": [{"internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX"}]},
             "results": [
              {"kind": "gemm", "impl": "torch", "dtype": "fp32", "shape": "4096x4096x4096", "median_gflops": 200.0, "best_gflops": 210.0},
              {"kind": "gemm", "impl": "torch", "dtype": "bf16", "shape": "4096x4096x4096", "median_gflops": 700.0, "best_gflops": 740.0},
              {"kind": "gemm", "impl": "numpy", "dtype": "fp32", "shape": "4096x4096x4096", "median_gflops": 400.0, "best_gflops": 410.0},
              {"kind": "moe_fwd_bwd", "impl": "torch_loop", "dtype": "fp32", "shape": "mixtral/4", "median_gflops": 160.0, "best_gflops": 170.0},
              {"kind": "moe_fwd_bwd", "impl": "torch_loop", "dtype": "bf16", "shape": "mixtral/4", "median_gflops": 550.0, "best_gflops": 560.0}
             ]}""";

    /** A sitting on an AVX-512 CPU without AVX512_BF16 (so that level is skipped), with one failed run. */
    private static Path sitting(Path dir) throws IOException {
        List<SittingReport.Run> plan = SittingReport.plan(false, List.of("avx2", "avx512")).stream()
                .map(r -> r.name().startsWith("moe") ? new SittingReport.Run(r.name(), r.benchmark(),
                        Map.of("shape", List.of("mixtral/4"), "dtype", r.params().get("dtype"), "isa", List.of("avx512")),
                        r.options()) : r)
                .toList();
        Files.write(dir.resolve("plan.txt"), plan.stream().map(SittingReport.Run::line).toList());
        Files.writeString(dir.resolve("levels.txt"), "avx2 ok\navx512 ok\navx512_bf16 skipped: CPU lacks avx512_bf16\n");
        Files.writeString(dir.resolve("machine.txt"), """
                date: 2026-12-05T07:00Z
                cpu: AMD EPYC 9004
                family: 25
                model: 17
                flags: fma avx2 avx512f avx512bw avx512vl
                load: 0.05 0.10 0.20
                busy: 1%
                quiet: yes
                quick: no
                threads: 2
                code: 0123abc with uncommitted source changes
                """);
        Files.writeString(dir.resolve("anchors.json"), ANCHORS);
        Files.writeString(dir.resolve("jmh-peak.json"), array(
                result("PeakRateBenchmark.oneThread", Map.of("isa", "avx2"), "ops/ms", 100),
                result("PeakRateBenchmark.twoThreads", Map.of("isa", "avx2"), "ops/ms", 200),
                result("PeakRateBenchmark.oneThread", Map.of("isa", "avx512"), "ops/ms", 250),
                result("PeakRateBenchmark.twoThreads", Map.of("isa", "avx512"), "ops/ms", 500)));
        // 4096^3 = 137.44 GFLOP: 0.5 s -> 274.9 GFLOP/s.
        Files.writeString(dir.resolve("jmh-gemm-f32.json"), array(
                result("DenseGemmBenchmark.gemm", Map.of("size", "4096x4096x4096", "dtype", "f32", "form", "nn", "isa", "avx512"), "ms/op", 500),
                result("DenseGemmBenchmark.gemm", Map.of("size", "4096x4096x4096", "dtype", "f32", "form", "nn", "isa", "avx2"), "ms/op", 1000),
                result("DenseGemmBenchmark.gemm", Map.of("size", "8192x1024x3584", "dtype", "f32", "form", "nn", "isa", "avx2"), "s/op", 1),
                result("DenseGemmBenchmark.gemm", Map.of("size", "8192x1024x3584", "dtype", "f32", "form", "nn", "isa", "avx512"), "ms/op", 200)));
        // gemm-bf16 wrote nothing and its log is gone: rows say where to look.
        // mixtral/4 fwd+bwd = 3 * 2 * 4096 * 2 * 3 * 1024 * 3584 = 541.1 GFLOP: 2 s -> 270.6 GFLOP/s.
        Files.writeString(dir.resolve("jmh-moe-f32.json"), array(
                result("MoELayerBenchmark.forwardBackward", Map.of("shape", "mixtral/4", "dtype", "f32", "isa", "avx512"), "ms/op", 2000)));
        Files.writeString(dir.resolve("jmh-moe-bf16.json"), "[]");
        Files.writeString(dir.resolve("jmh-moe-bf16.log"), """
                # JMH version: 1.37
                # Benchmark: dev.panamoe.jmh.MoELayerBenchmark.forwardBackward
                # Parameters: (dtype = bf16, isa = avx512, shape = mixtral/4)

                # Run progress: 0.00% complete, ETA 00:00:20
                # Fork: 1 of 1
                Iteration   1: <failure>

                java.lang.UnsupportedOperationException: dtype bf16 skipped: not yet
                \tat dev.panamoe.jmh.MoELayerBenchmark.setup(MoELayerBenchmark.java:60)
                """);
        // small: 8 x 256 = 2048 tokens a step.
        Files.writeString(dir.resolve("jmh-step.json"), array(
                result("TrainingStepBenchmark.step", Map.of("preset", "small", "precision", "fp32"), "ms/op", 500),
                result("TrainingStepBenchmark.step", Map.of("preset", "small", "precision", "bf16"), "ms/op", 320)));
        return dir;
    }

    private static String row(String md, String start) {
        return md.lines().filter(l -> l.startsWith(start)).findFirst()
                .orElseThrow(() -> new AssertionError("no row starting '" + start + "' in\n" + md));
    }

    @Test
    void tableHasSameSittingRatiosAndSaysWhatIsMissing(@TempDir Path dir) throws IOException {
        String md = SittingReport.table(sitting(dir));

        assertTrue(md.startsWith("### AMD EPYC 9004 (family 25, model 17), 2026-12-05T07:00Z"), md);
        assertTrue(md.contains("One sitting of `scripts/bench-sitting.sh` at 0123abc with uncommitted source changes: 2 threads"), md);
        assertTrue(md.contains("load average 0.05 0.10 0.20, CPU busy 1% (quiet)"), md);
        assertTrue(md.contains("OpenJDK 64-Bit Server VM 25.0.3+9-LTS; torch 2.13.0+cpu"), md);
        assertTrue(md.contains("openblas 0.3.31 (SkylakeX kernels)"), md);
        assertEquals("| avx512: 512-bit FMA | 250.0 GFLOP/s | 500.0 GFLOP/s |", row(md, "| avx512:"));
        assertEquals("| avx512_bf16: vdpbf16ps | skipped: CPU lacks avx512_bf16 |  |", row(md, "| avx512_bf16:"));
        assertEquals("| numpy/OpenBLAS fp32 matmul | 4096x4096x4096 | 400.0 GFLOP/s | 410.0 GFLOP/s |", row(md, "| numpy"));

        // 274.9 GFLOP/s vs the AVX-512 FMA peak 500, OpenBLAS 400 and torch fp32 200.
        assertEquals("| 4096x4096x4096 | f32 | avx512 | 500.00 ms | 274.9 GFLOP/s | 0.55x | 0.69x | 1.37x | "
                + ">= 0.85x peak: 35% short; >= 1.00x OpenBLAS: 31% short |", row(md, "| 4096x4096x4096 | f32 | avx512 |"));
        // Levels below the targets' get ratios and no target; the peak is the level's own (AVX2: 200).
        assertEquals("| 4096x4096x4096 | f32 | avx2 | 1000.00 ms | 137.4 GFLOP/s | 0.69x | 0.34x | 0.69x |  |",
                row(md, "| 4096x4096x4096 | f32 | avx2 |"));
        assertTrue(row(md, "| 8192x1024x3584 | f32 | avx2 |").contains("| 1000.00 ms | 60.1 GFLOP/s | 0.30x |"), md);
        assertEquals("| 8192x1024x3584 | f32 | avx512 | 200.00 ms | 300.6 GFLOP/s | 0.60x | 0.75x | 1.50x | "
                + ">= 0.85x peak: 29% short; >= 1.00x OpenBLAS: 25% short |", row(md, "| 8192x1024x3584 | f32 | avx512 |"));
        assertEquals("| 4096x4096x4096 | bf16 | avx2 | no result (see jmh-gemm-bf16.log) | | | | | |",
                row(md, "| 4096x4096x4096 | bf16 | avx2 |"));

        assertEquals("| mixtral/4 | f32 | avx512 | 2000.00 ms | 270.6 GFLOP/s | 0.54x | 1.69x | >= 1.80x torch: 6% short |",
                row(md, "| mixtral/4 | f32 |"));
        assertEquals("| mixtral/4 | bf16 | avx512 | no result: dtype bf16 skipped: not yet | | | | |",
                row(md, "| mixtral/4 | bf16 |"));
        assertFalse(md.contains("not quiet"), md);
        assertEquals(1, md.lines().filter(l -> l.startsWith("| PanaMoE dense GEMM |")).count(), "one GEMM table for f32 and bf16");
        assertEquals(1, md.lines().filter(l -> l.startsWith("| PanaMoE MoELayer fwd+bwd |")).count(), md);

        // issue 11's rows: the layer inside training (no result here) and the steps, without the 2x
        // target on a host without AVX512_BF16
        assertTrue(md.contains("| PanaMoE MoELayer training step (gradients discarded, fwd+bwd, working copies refreshed) |"),
                md);
        assertEquals("| mixtral/4 | bf16 | avx512 | no result (see jmh-moe-train-bf16.log) | | | | |",
                md.lines().filter(l -> l.startsWith("| mixtral/4 | bf16 |")).skip(1).findFirst().orElseThrow());
        assertEquals("| small (2048 tokens) | 500.00 ms | 320.00 ms | 4096 | 6400 | 1.56x |  |", row(md, "| small"));
    }

    @Test
    void tableWithoutAnchorsSaysSoAndLeavesTheirRatiosOut(@TempDir Path dir) throws IOException {
        Path sitting = sitting(dir);
        Files.delete(sitting.resolve("anchors.json"));
        Files.writeString(sitting.resolve("machine.txt"), Files.readString(sitting.resolve("machine.txt")).replace("quiet: yes", "quiet: no"));
        String md = SittingReport.table(sitting);
        assertTrue(md.contains("| no anchors.json: the anchors did not run | | | |"), md);
        assertTrue(md.contains("(**not quiet**: the numbers are disturbed)"), md);
        assertEquals("| 4096x4096x4096 | f32 | avx512 | 500.00 ms | 274.9 GFLOP/s | 0.55x | n/a | n/a | "
                + ">= 0.85x peak: 35% short; >= 1.00x OpenBLAS: n/a |", row(md, "| 4096x4096x4096 | f32 | avx512 |"));
    }

    @Test
    void targetsApplyAtTheLevelsTheyAreSetFor() {
        assertEquals(">= 0.80x peak: met; >= 1.00x torch: 10% short", SittingReport.target(true, "bf16", "avx512_bf16", 0.8, 1, 0.9));
        assertEquals(">= 1.10x torch: met", SittingReport.target(false, "bf16", "avx512_bf16", 0.1, 0, 1.2));
        assertEquals("", SittingReport.target(false, "bf16", "avx512", 0.1, 0, 1.2));
        assertEquals("", SittingReport.target(true, "f32", "avx2", 0.1, 0.1, 0.1));
    }

    @Test
    void planRunsEachLevelTheCpuHasAndF32BelowAvx512Bf16Only() {
        List<SittingReport.Run> all = SittingReport.plan(false, List.of("avx2", "avx512", "avx512_bf16"));
        assertEquals(List.of("peak", "gemm-f32", "gemm-bf16", "moe-f32", "moe-bf16", "moe-train-bf16", "step"),
                all.stream().map(SittingReport.Run::name).toList());
        assertEquals("moe-train-bf16 MoELayerBenchmark.trainingStep -p shape=mixtral/4,deepseek/4 -p dtype=bf16 "
                + "-p isa=avx512_bf16 -f 1 -wi 1 -w 4s -i 4 -r 4s", all.get(5).line());
        assertEquals("step TrainingStepBenchmark.step -p preset=small -p precision=fp32,bf16 -f 1 -wi 1 -w 3s -i 5 -r 3s",
                all.get(6).line());
        assertEquals("gemm-f32 DenseGemmBenchmark.gemm -p size=4096x4096x4096,8192x1024x3584 -p dtype=f32 -p isa=avx2,avx512 "
                + "-p form=nn -f 1 -wi 1 -w 2s -i 4 -r 2s", all.get(1).line());
        assertEquals(List.of("avx2", "avx512", "avx512_bf16"), all.get(4).params().get("isa"));
        for (SittingReport.Run run : all) {
            assertEquals(run, SittingReport.Run.parse(run.line()));
        }
        assertEquals(6, all.get(2).grid().size());
        assertEquals(Map.of("dtype", "bf16", "form", "nn", "isa", "avx2", "size", "4096x4096x4096"), all.get(2).grid().get(0));

        List<SittingReport.Run> avx2 = SittingReport.plan(true, List.of("avx2"));
        assertTrue(avx2.stream().filter(r -> r.params().containsKey("isa"))
                .allMatch(r -> r.params().get("isa").equals(List.of("avx2"))));
        assertEquals(List.of("tiny"), avx2.getLast().params().get("preset"));
        assertEquals(List.of("tiny"), avx2.get(3).params().get("shape"));
        assertTrue(SittingReport.plan(false, List.of()).isEmpty());
        assertThrows(IllegalArgumentException.class, () -> SittingReport.Run.parse("lonely"));
    }

    @Test
    void failuresAreKeyedByBenchmarkAndParameters() {
        Map<String, String> f = SittingReport.failures("""
                # Benchmark: dev.panamoe.jmh.PeakRateBenchmark.twoThreads
                # Parameters: (isa = avx512_bf16)
                <failure>
                java.lang.UnsupportedOperationException: avx512_bf16 skipped: CPU lacks avx512_bf16
                # Benchmark: dev.panamoe.jmh.PeakRateBenchmark.twoThreads
                # Parameters: (isa = avx2)
                Iteration   1: 200.0 ops/ms
                """);
        assertEquals(Map.of("PeakRateBenchmark.twoThreads {isa=avx512_bf16}", "avx512_bf16 skipped: CPU lacks avx512_bf16"), f);
    }
}
