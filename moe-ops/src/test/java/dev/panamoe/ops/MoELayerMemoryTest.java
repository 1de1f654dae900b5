package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * 10,000 forward/backward passes, plus 1,000 that change the token count every time (so the
 * workspace is freed and reallocated each call), keep the resident set within a fixed bound:
 * no native buffer, per-call struct or workspace leaks. One workspace of this layer is
 * ~0.17 MiB, so leaking it on every reallocation alone would exceed the bound 2.5-fold.
 * Runs on one native thread: what is allocated does not depend on the thread count, and on a
 * loaded 2-core machine every OpenMP barrier can cost a scheduler time slice.
 */
class MoELayerMemoryTest {
    private static final Backend CPU = CpuBackend.get();
    private static final long BOUND = 64L << 20;

    @Test
    void residentSetStaysBoundedOverManyPasses() throws IOException {
        MoELayer.Config cfg = MoELayer.Config.builder().hidden(128).ffn(128).experts(4).topK(2).build();
        int threads = CPU.numThreads();
        CPU.setNumThreads(1);
        try (TensorScope scope = TensorScope.confined(CPU); MoELayer layer = new MoELayer(CPU, cfg, 1)) {
            Tensor x16 = TestData.tensor(scope, "x16", TestData.input(16, 128, 1));
            Tensor x17 = TestData.tensor(scope, "x17", TestData.input(17, 128, 2));
            Tensor g16 = TestData.tensor(scope, "g16", TestData.input(16, 128, 3));
            Tensor g17 = TestData.tensor(scope, "g17", TestData.input(17, 128, 4));

            for (int i = 0; i < 200; i++) {
                pass(layer, i % 2 == 0 ? x16 : x17, i % 2 == 0 ? g16 : g17);
            }
            touchHeap();
            long before = nativeResidentBytes();
            for (int i = 0; i < 10_000; i++) {
                pass(layer, x16, g16);
            }
            for (int i = 0; i < 1000; i++) {
                pass(layer, i % 2 == 0 ? x17 : x16, i % 2 == 0 ? g17 : g16);
            }
            long after = nativeResidentBytes();
            assertTrue(after - before < BOUND, "VmRSS outside the JVM's heap and non-heap pools grew from "
                    + (before >> 20) + " MiB to " + (after >> 20) + " MiB");
            assertTrue(Float.isFinite(layer.router().weight().grad().getFloat(0)), "the passes computed finite gradients");
        } finally {
            CPU.setNumThreads(threads);
        }
    }

    private static void pass(MoELayer layer, Tensor x, Tensor gradY) {
        layer.zeroGrad();
        layer.forward(x);
        layer.backward(gradY);
    }

    /**
     * Allocates twice the committed Java heap in small garbage arrays, so every committed heap
     * page is resident before the first measurement: later heap churn then does not read as
     * growth.
     */
    private static void touchHeap() {
        long target = 2 * Runtime.getRuntime().totalMemory();
        long sink = 0;
        for (long done = 0; done < target; done += 1 << 16) {
            byte[] garbage = new byte[1 << 16];
            garbage[garbage.length - 1] = 1;
            sink += garbage[garbage.length - 1];
        }
        assertTrue(sink > 0);
    }

    /**
     * The resident set less what the JVM has committed for its heap and non-heap pools: the JVM
     * grows its heap when GC is slow (as on a loaded machine), which is not a native leak.
     */
    private static long nativeResidentBytes() throws IOException {
        MemoryMXBean jvm = ManagementFactory.getMemoryMXBean();
        return residentBytes() - jvm.getHeapMemoryUsage().getCommitted() - jvm.getNonHeapMemoryUsage().getCommitted();
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
