package dev.panamoe.ops.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import org.junit.jupiter.api.Test;

/**
 * The harness's own checks (hostexec/selftest.cu, exported by libpanamoe_cuda_host.so only):
 * the block/warp scan and reduce primitives, warp collectives at their edges, early return,
 * poisoned shared memory, deadlock and misuse reports, atomics, and the cp.async / ldmatrix /
 * mma.m16n8k16 wrappers composed into an exact tile product - with fibers and with OS threads.
 */
class HostHarnessSelfTest {
    @SuppressWarnings("restricted")
    private static int selfTest(int threadMode, MemorySegment report) throws Throwable {
        MemorySegment symbol = Harness.HOST.library().lookup().find("pmoe_hostexec_selftest").orElseThrow(
                () -> new AssertionError("pmoe_hostexec_selftest is missing from " + Harness.HOST_LIBRARY));
        MethodHandle h = Linker.nativeLinker().downcallHandle(symbol,
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG));
        return (int) h.invokeExact(threadMode, report, report.byteSize());
    }

    private static void run(int threadMode, String mode) throws Throwable {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment report = arena.allocate(1 << 16);
            int failures = selfTest(threadMode, report);
            String text = report.getString(0);
            System.out.print("host-execution harness self-test (" + mode + "):\n" + text);
            assertEquals(0, failures, () -> mode + ": " + text);
            assertTrue(text.lines().filter(l -> l.startsWith("ok ")).count() >= 12, () -> "too few checks ran: " + text);
        }
    }

    @Test
    void withFibers() throws Throwable {
        run(0, "fibers");
    }

    @Test
    void withOsThreads() throws Throwable {
        run(1, "OS threads");
    }
}
