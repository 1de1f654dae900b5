package dev.panamoe.runtime.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SimulateCommandTest {

    @TempDir
    Path dir;

    @Test
    void synthesisesATraceAndSimulatesItToJsonAndPng() throws IOException {
        Path trace = dir.resolve("trace");
        TrainCommandTest.Result synth = TrainCommandTest.run("trace", "synth", "--out", trace.toString(), "--format",
                "smartmoe", "--experts", "32", "--ranks", "8", "--layers", "2", "--iters", "30", "--seed", "3");
        assertEquals(0, synth.code(), synth.err());
        assertTrue(Files.isRegularFile(trace.resolve("table_iter29_rank7.log")));

        Path json = dir.resolve("out/sim.json");
        Path png = dir.resolve("out/sim.png");
        TrainCommandTest.Result sim = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--cluster",
                "h100-nvlink-ib", "--model", "gpt-moe-l8-h2048", "--policy", "static,greedy:10,replica,smart", "--json",
                json.toString(), "--png", png.toString());
        assertEquals(0, sim.code(), sim.err());
        assertTrue(sim.out().contains("greedy:10") && sim.out().contains("mean iter ms"), sim.out());
        JsonObject policies = JsonParser.parseString(Files.readString(json)).getAsJsonObject()
                .getAsJsonObject("policies");
        assertEquals(4, policies.size());
        for (String p : new String[] {"static", "greedy:10", "replica", "smart"}) {
            JsonObject o = policies.getAsJsonObject(p);
            assertTrue(o.get("mean_iter_ms").getAsDouble() > 0, p);
            assertTrue(o.get("max_over_mean_load").getAsDouble() >= 1, p);
            assertTrue(o.get("changes").getAsInt() >= 0, p);
        }
        assertEquals(0, policies.getAsJsonObject("static").get("changes").getAsInt());
        byte[] magic = Arrays.copyOf(Files.readAllBytes(png), 8);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, magic);
    }

    @Test
    void nativeTracesWorkTooAndBadInputIsNamed() {
        Path trace = dir.resolve("native");
        assertEquals(0, TrainCommandTest.run("trace", "synth", "--out", trace.toString(), "--format", "native",
                "--experts", "16", "--ranks", "4", "--layers", "1", "--iters", "5").code());
        assertTrue(Files.isRegularFile(trace.resolve("trace.jsonl")));
        TrainCommandTest.Result sim = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--policy",
                "greedy:2,smart");
        assertEquals(0, sim.code(), sim.err());

        TrainCommandTest.Result bad = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--policy", "lpt");
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("Invalid value for option '--policy'") && bad.err().contains("unknown \"lpt\""),
                bad.err());
        TrainCommandTest.Result format = TrainCommandTest.run("trace", "synth", "--out", trace.toString(), "--format",
                "csv");
        assertEquals(2, format.code());
        assertTrue(format.err().contains("\"csv\" is not native or smartmoe"), format.err());
    }

    /** A trace as SmartMoE publishes it: counts as Python floats, two MoE layers (ids 0 and 1). */
    private Path smartMoeFloatTrace() throws IOException {
        Path trace = Files.createDirectories(dir.resolve("smartmoe-floats"));
        for (int it = 0; it < 3; it++) {
            for (int r = 0; r < 2; r++) {
                Files.writeString(trace.resolve("table_iter" + it + "_rank" + r + ".log"),
                        "0:[[1700.0, 500.0, 900.0, 996.0]]\n1:[[1024.0, 1024.0, 1024.0, 1.024e3]]\n");
            }
        }
        return trace;
    }

    @Test
    void replaysOneLayerOfAFloatWrittenTraceThroughAOneLayerModelWithTheBalancedBound() throws IOException {
        Path trace = smartMoeFloatTrace();
        Path json = dir.resolve("one.json");
        TrainCommandTest.Result sim = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--layer", "0",
                "--model", "moe-layer:hidden=1536,ffn=3072,tokens=2048", "--policy", "static,greedy:1", "--json",
                json.toString());
        assertEquals(0, sim.code(), sim.err());
        assertTrue(sim.out().contains("1 MoE layer replays the trace's layer 0"), sim.out());
        assertTrue(sim.out().contains("balanced"), sim.out());
        JsonObject root = JsonParser.parseString(Files.readString(json)).getAsJsonObject();
        assertEquals(1, root.getAsJsonObject("trace").get("layers").getAsInt());
        double staticMs = root.getAsJsonObject("policies").getAsJsonObject("static").get("mean_iter_ms").getAsDouble();
        double greedyMs = root.getAsJsonObject("policies").getAsJsonObject("greedy:1").get("mean_iter_ms")
                .getAsDouble();
        double balancedMs = root.getAsJsonObject("balanced").get("mean_iter_ms").getAsDouble();
        // layer 0 is skewed (1700 of 4096 slots on expert 0): balancing bounds every policy from below
        assertTrue(balancedMs < staticMs && balancedMs <= greedyMs * (1 + 1e-9),
                "balanced " + balancedMs + " static " + staticMs + " greedy " + greedyMs);

        // layer 1 is already balanced: static is at the bound
        TrainCommandTest.Result even = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--layer", "1",
                "--model", "moe-layer:hidden=1536,ffn=3072,tokens=2048", "--policy", "static", "--json",
                json.toString());
        assertEquals(0, even.code(), even.err());
        JsonObject evenRoot = JsonParser.parseString(Files.readString(json)).getAsJsonObject();
        assertEquals(evenRoot.getAsJsonObject("policies").getAsJsonObject("static").get("mean_iter_ms").getAsDouble(),
                evenRoot.getAsJsonObject("balanced").get("mean_iter_ms").getAsDouble(), 1e-9);

        TrainCommandTest.Result missing = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--layer", "7");
        assertEquals(2, missing.code(), missing.err());
        assertTrue(missing.err().contains("no MoE layer 7; its layers are [0, 1]"), missing.err());
        TrainCommandTest.Result badModel = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--model",
                "moe-layer:hidden=1536,tokens=2048");
        assertEquals(2, badModel.code(), badModel.err());
        assertTrue(badModel.err().contains("lacks ffn="), badModel.err());
    }

    @Test
    void clusterFromAJsonFileAndNonFiniteNumbersNamed() throws IOException {
        Path trace = smartMoeFloatTrace();
        Path cluster = dir.resolve("my-cluster.json");
        Files.writeString(cluster, "{\"preset\": \"a100-nvlink-ib\", \"inter-bw\": 5e9}");
        TrainCommandTest.Result sim = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--cluster",
                cluster.toString(), "--policy", "static");
        assertEquals(0, sim.code(), sim.err());
        assertTrue(sim.out().contains("a100-nvlink-ib+custom") && sim.out().contains("inter-node 5.00 GB/s"), sim.out());

        Files.writeString(cluster, "{\"intra-bw\": 1e-300}");
        TrainCommandTest.Result tiny = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--cluster",
                cluster.toString());
        assertEquals(2, tiny.code(), tiny.err());
        assertTrue(tiny.err().contains("intra-bw must be between 1 and 1e18, got 1e-300"), tiny.err());
        assertEquals(1, tiny.err().strip().lines().count(), tiny.err());

        TrainCommandTest.Result absent = TrainCommandTest.run("simulate", "--trace", trace.toString(), "--cluster",
                dir.resolve("nope.json").toString());
        assertEquals(2, absent.code(), absent.err());
        assertTrue(absent.err().contains("cannot read") && absent.err().contains("nope.json: no such file"),
                absent.err());
    }
}
