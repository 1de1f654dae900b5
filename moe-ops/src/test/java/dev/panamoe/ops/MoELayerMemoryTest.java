package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * 10,000 forward/backward passes, plus 1,000 that change the token count every time (so the
 * workspace is freed and reallocated each call), keep the resident set within a fixed bound:
 * no native buffer, per-call struct or workspace leaks. One workspace of this layer is
 * ~0.17 MiB, so leaking it on every reallocation alone would exceed the bound 2.5-fold.
 *
 * <p>The passes run in a child JVM whose heap is fixed and pre-touched (-Xms = -Xmx,
 * AlwaysPreTouch): the JVM grows and shrinks a default heap with GC pressure, which on a loaded
 * machine moved the resident set by more than the bound without any leak. One native thread:
 * what is allocated does not depend on the thread count.
 */
class MoELayerMemoryTest {
    private static final long BOUND = 64L << 20;
    private static final String RESULT = "resident growth bytes: ";

    @Test
    void residentSetStaysBoundedOverManyPasses() throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch",
                "-cp", System.getProperty("java.class.path")));
        String nativeDir = System.getProperty("panamoe.native.dir");
        if (nativeDir != null) {
            command.add("-Dpanamoe.native.dir=" + nativeDir);
        }
        command.add(MoELayerMemoryTest.class.getName());
        Path log = Files.createTempFile("moe-memory", ".log");
        Process child = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean done = child.waitFor(5, TimeUnit.MINUTES);
        if (!done) {
            child.destroyForcibly();
        }
        String output = Files.readString(log);
        Files.delete(log);
        assertTrue(done, "the child JVM did not finish within 5 minutes:\n" + output);
        assertEquals(0, child.exitValue(), "the child JVM failed:\n" + output);
        long growth = output.lines().filter(l -> l.startsWith(RESULT))
                .mapToLong(l -> Long.parseLong(l.substring(RESULT.length()).strip())).findFirst()
                .orElseThrow(() -> new AssertionError("no '" + RESULT + "' line in:\n" + output));
        assertTrue(growth < BOUND, "VmRSS grew by " + (growth >> 20) + " MiB over the passes (bound " + (BOUND >> 20)
                + " MiB)");
    }

    /** The child: warms up, runs the passes, prints the resident set's growth. */
    public static void main(String[] args) throws IOException {
        Backend cpu = CpuBackend.get();
        cpu.setNumThreads(1);
        MoELayer.Config cfg = MoELayer.Config.builder().hidden(128).ffn(128).experts(4).topK(2).build();
        try (TensorScope scope = TensorScope.confined(cpu); MoELayer layer = new MoELayer(cpu, cfg, 1)) {
            Tensor x16 = TestData.tensor(scope, "x16", TestData.input(16, 128, 1));
            Tensor x17 = TestData.tensor(scope, "x17", TestData.input(17, 128, 2));
            Tensor g16 = TestData.tensor(scope, "g16", TestData.input(16, 128, 3));
            Tensor g17 = TestData.tensor(scope, "g17", TestData.input(17, 128, 4));

            for (int i = 0; i < 200; i++) {
                pass(layer, i % 2 == 0 ? x16 : x17, i % 2 == 0 ? g16 : g17);
            }
            long before = residentBytes();
            for (int i = 0; i < 10_000; i++) {
                pass(layer, x16, g16);
            }
            for (int i = 0; i < 1000; i++) {
                pass(layer, i % 2 == 0 ? x17 : x16, i % 2 == 0 ? g17 : g16);
            }
            long after = residentBytes();
            if (!Float.isFinite(layer.router().weight().grad().getFloat(0))) {
                throw new IllegalStateException("the passes computed a non-finite gradient");
            }
            System.out.println(RESULT + (after - before));
        }
    }

    private static void pass(MoELayer layer, Tensor x, Tensor gradY) {
        layer.zeroGrad();
        layer.forward(x);
        layer.backward(gradY);
    }

    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
            }
        }
        throw new IllegalStateException("no VmRSS line in /proc/self/status");
    }
}
