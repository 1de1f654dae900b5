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
}
