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
 * Each detector is proven on a deliberately broken kernel that must be caught with a message
 * naming the problem, next to its correct variant: a cp.async pipeline without its trailing
 * barrier, misaligned or wrong-space cp.async / ldmatrix / 16-byte packs, collectives across
 * call sites or naming an exited lane, write-then-read races within and between blocks (random
 * schedule; fibers only), and shared memory over sm_80's and sm_90's per-block limits.
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

    private static void run(int threadMode, String mode, int checks) throws Throwable {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment report = arena.allocate(1 << 16);
            int failures = selfTest(threadMode, report);
            String text = report.getString(0);
            System.out.print("host-execution harness self-test (" + mode + "):\n" + text);
            assertEquals(0, failures, () -> mode + ": " + text);
            assertTrue(text.lines().filter(l -> l.startsWith("ok ")).count() >= checks, () -> "too few checks ran: " + text);
            for (String detector : new String[] {"misaligned cp.async source is reported",
                    "a shuffle pairing with another call site's shuffle is reported", "a mask naming an exited lane is reported",
                    "sm_80: an oversized shared buffer is reported"})
                assertTrue(text.contains("ok " + detector), () -> mode + ": detector check missing: " + detector);
        }
    }

    @Test
    void withFibers() throws Throwable {
        run(0, "fibers", 39);
    }

    @Test
    void withOsThreads() throws Throwable {
        run(1, "OS threads", 27);
    }
}
