package dev.panamoe.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU suite's scripts (scripts/gpu-suite/) parse, and the PyTorch anchors degrade to a JSON
 * file that says why when there is no PyTorch or no GPU (as on the build machines), so the first
 * run on a GPU machine is not the first run of these files.
 */
class GpuSuiteScriptsTest {
    private static final Path SCRIPTS = Path.of("..", "scripts", "gpu-suite").toAbsolutePath().normalize();

    /** Runs a command, returns its exit code; its output goes to `log`. */
    private static int run(Path log, String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), () -> String.join(" ", command) + " did not finish in 60 s");
        return p.exitValue();
    }

    @Test
    void shellScriptsParse(@TempDir Path dir) throws Exception {
        List<Path> scripts = new ArrayList<>();
        try (var files = Files.list(SCRIPTS)) {
            files.filter(f -> f.toString().endsWith(".sh")).sorted().forEach(scripts::add);
        }
        assertEquals(List.of("bundle.sh", "run.sh"), scripts.stream().map(p -> p.getFileName().toString()).toList());
        for (Path script : scripts) {
            Path log = dir.resolve("bash-n.log");
            assertEquals(0, run(log, "bash", "-n", script.toString()), () -> script + ": " + read(log));
        }
    }

    @Test
    void torchAnchorsSayWhyWithoutPyTorchOrGpu(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("torch.json"), log = dir.resolve("anchors.log");
        int code = run(log, "python3", SCRIPTS.resolve("torch_anchors.py").toString(), "--out", out.toString(),
                "--smoke");
        JsonObject doc = JsonParser.parseString(Files.readString(out)).getAsJsonObject();
        // Here: no torch, or torch without a device. On a GPU machine this test measures nothing.
        if (doc.has("status")) {
            assertEquals(0, code, () -> read(log));
            assertEquals("unavailable", doc.get("status").getAsString());
            assertTrue(doc.get("reason").getAsString().matches("(PyTorch or numpy is not installed here|torch .* sees no CUDA device).*"),
                    doc.toString());
            assertTrue(read(log).contains("no anchors measured"), () -> read(log));
        } else {
            assertTrue(doc.getAsJsonArray("results").size() > 0, doc.toString());
        }
    }

    /** The timeline phase's reading of Nsight Systems' tables, on a trace of two streams. */
    @Test
    void nsysSummaryMeasuresOverlapIdleTimeAndWaits(@TempDir Path dir) throws Exception {
        Path trace = Files.writeString(dir.resolve("trace.csv"), """
                "Start (ns)","Duration (ns)","CorrId","GrdX","Strm","Name"
                10000000,5000000,1,1,"13","gemm"
                16000000,4000000,2,1,"13","norm"
                17000000,6000000,3,1,"21","ncclAllToAll"
                30000000,1000000,4,1,"13","adamw"
                """);
        Path api = Files.writeString(dir.resolve("api.csv"), """
                "Time (%)","Total Time (ns)","Num Calls","Avg (ns)","Name"
                50.0,1000,12,83,"cudaStreamSynchronize"
                20.0,400,3,133,"cudaMemcpy_v3020"
                10.0,400,300,1,"cudaLaunchKernel"
                5.0,400,2,1,"cudaMemcpyAsync"
                """);
        Path log = dir.resolve("summary.log");
        assertEquals(0, run(log, "python3", SCRIPTS.resolve("nsys_summary.py").toString(), trace.toString(),
                api.toString()), () -> read(log));
        String out = read(log);
        // Stream 13 is busy 10 ms, stream 21 6 ms; they overlap from 17 to 20 ms; the union is 13 of 21 ms.
        for (String line : new String[] {"nsys: 4 GPU operations on 2 stream(s) over 21.000 ms",
                "  stream 13: 3 operations, busy 10.000 ms, 3 distinct kernels/copies",
                "  stream 21: 1 operations, busy 6.000 ms, 1 distinct kernels/copies",
                "  two or more streams at once: 3.000 ms; device idle inside the span: 8.000 ms (38.1%)",
                "nsys: calls that make the host wait: cudaStreamSynchronize 12, cudaMemcpy 3"})
            assertTrue(out.contains(line + "\n"), () -> "missing: " + line + "\n" + out);
    }

    private static String read(Path log) {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no output: " + e + ")";
        }
    }
}
