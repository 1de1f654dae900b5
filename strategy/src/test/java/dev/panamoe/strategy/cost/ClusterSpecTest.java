package dev.panamoe.strategy.cost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClusterSpecTest {
    @TempDir
    Path dir;

    @Test
    void presetsAndOverrides() {
        ClusterSpec h100 = ClusterSpec.parse("h100-nvlink-ib", 64, 8);
        assertEquals(ClusterSpec.preset("h100-nvlink-ib", 64, 8), h100);
        assertEquals(7, h100.node(63));
        assertTrue(h100.sameNode(8, 15));
        assertFalse(h100.sameNode(7, 8));
        ClusterSpec custom = ClusterSpec.parse("a100-nvlink-ib:inter-bw=5e9, memory-gib=40", 16, 8);
        assertEquals(5e9, custom.interBandwidth(), 0);
        assertEquals(40.0 * (1L << 30), custom.memoryBytes(), 0);
        assertEquals(ClusterSpec.preset("a100-nvlink-ib", 16, 8).deviceFlops(), custom.deviceFlops(), 0);
        ClusterSpec json = ClusterSpec.parse("{\"preset\": \"v100-pcie-eth\", \"flops\": 1e14}", 16, 8);
        assertEquals(1e14, json.deviceFlops(), 0);
        assertEquals(ClusterSpec.preset("v100-pcie-eth", 16, 8).interBandwidth(), json.interBandwidth(), 0);
        ClusterSpec keysOnly = ClusterSpec.parse("inter-lat=0", 16, 8);
        assertEquals(0, keysOnly.interLatency(), 0);
        for (String name : ClusterSpec.PRESETS) {
            assertTrue(ClusterSpec.preset(name, 8, 8).describe().startsWith(name));
        }
    }

    @Test
    void badSpecsNameTheProblem() {
        assertMessage("cluster: unknown preset 'dgx'", () -> ClusterSpec.parse("dgx", 8, 8));
        assertMessage("cluster: unknown key \"nics\"", () -> ClusterSpec.parse("h100-nvlink-ib:nics=4", 8, 8));
        assertMessage("cluster: value \"fast\" of flops", () -> ClusterSpec.parse("flops=fast", 8, 8));
        assertMessage("gpusPerNode: 3 does not divide gpus 8", () -> ClusterSpec.parse("h100-nvlink-ib", 8, 3));
        assertMessage("cluster: inter-bw must be between 1 and 1e18, got 0", () -> ClusterSpec.parse("inter-bw=0", 8, 8));
        assertMessage("cluster: inter-lat must be between 0 and 3600, got 1e308", () -> ClusterSpec.parse("inter-lat=1e308", 8, 8));
    }

    @Test
    void calibrationFromJmhResults() throws IOException {
        // a 1024^3 GEMM in 10 ms: 214.7 GFLOP/s; an in-JVM all-to-all of 8 MB in 1 ms: 8 GB/s
        Files.writeString(dir.resolve("2026-01-01-cpu.json"), """
                [{"benchmark": "dev.panamoe.jmh.DenseGemmBenchmark.gemm", "params": {"size": "1024x1024x1024"},
                  "primaryMetric": {"score": 10.0, "scoreUnit": "ms/op"}},
                 {"benchmark": "dev.panamoe.jmh.CommunicatorBenchmark.allToAll",
                  "params": {"bytes": "8000000", "backend": "in-jvm"},
                  "primaryMetric": {"score": 1000.0, "scoreUnit": "us/op"}}]
                """);
        Files.writeString(dir.resolve("notes.json"), "{\"not\": \"jmh\"}");
        Calibration c = Calibration.load(dir);
        ClusterSpec cpu = c.apply(ClusterSpec.preset("cpu", 4, 4));
        assertEquals(2.0 * (1 << 30) / 0.010 / 4, cpu.deviceFlops(), 1);
        assertEquals(8e9 / 4, cpu.intraBandwidth(), 1);
        assertTrue(c.calibrates(cpu));
        // overrides survive calibration
        assertEquals(2.0 * (1 << 30), c.apply(ClusterSpec.parse("cpu:memory-gib=2", 4, 4)).memoryBytes(), 0);
        List<String> lines = c.describe(cpu);
        assertTrue(lines.get(0).contains("measured") && lines.get(0).contains("2026-01-01-cpu.json"), lines.get(0));
        assertTrue(lines.get(1).contains("measured"), lines.get(1));
        // CPU results do not calibrate an H100 cluster
        ClusterSpec h100 = ClusterSpec.preset("h100-nvlink-ib", 8, 8);
        assertEquals(h100, c.apply(h100));
        assertFalse(c.calibrates(h100));
        assertTrue(c.describe(h100).get(0).contains("default"), c.describe(h100).get(0));
        // no results: defaults
        Calibration none = Calibration.load(dir.resolve("missing"));
        assertEquals(ClusterSpec.preset("cpu", 4, 4), none.apply(ClusterSpec.preset("cpu", 4, 4)));
        assertTrue(none.describe(cpu).get(0).contains("default"));
    }

    @Test
    void expertLoadRescalesPerGroup() {
        long[][][] counts = {{{10, 30}, {5, 5}, {0, 0}}};
        ExpertLoad load = new ExpertLoad(counts);
        long[][] group = load.forGroup(0, 1, 2, 100); // sources 2 and 0
        assertEquals(50, group[0][0]); // an empty source is spread evenly
        assertEquals(25, group[1][0]);
        assertEquals(75, group[1][1]);
        assertEquals(3, load.distinctGroups(2));
        assertEquals(1, load.distinctGroups(3));
        long[] totals = ExpertLoad.zipf(2, 4, 8, 1000, 1.0, 9).expertTotals(1);
        assertEquals(4000, java.util.Arrays.stream(totals).sum());
        assertMessage("counts[0][1]: expected 2 experts, got 1", () -> new ExpertLoad(new long[][][] {{{1, 2}, {3}}}));
        assertMessage("counts[0][0][1]: must be >= 0", () -> new ExpertLoad(new long[][][] {{{1, -2}}}));
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().startsWith(expected), "'" + expected + "' vs '" + e.getMessage() + "'");
    }
}
