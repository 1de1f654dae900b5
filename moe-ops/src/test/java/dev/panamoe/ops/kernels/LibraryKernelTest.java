package dev.panamoe.ops.kernels;

import static dev.panamoe.ops.kernels.KernelTestSupport.BF16;
import static dev.panamoe.ops.kernels.KernelTestSupport.F32;
import static dev.panamoe.ops.kernels.KernelTestSupport.LIB;
import static dev.panamoe.ops.kernels.KernelTestSupport.NO_STREAM;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertInvalid;
import static dev.panamoe.ops.kernels.KernelTestSupport.assertOk;
import static dev.panamoe.ops.kernels.KernelTestSupport.floats;
import static dev.panamoe.ops.kernels.KernelTestSupport.gaussian;
import static dev.panamoe.ops.kernels.KernelTestSupport.lastError;
import static dev.panamoe.ops.kernels.KernelTestSupport.setThreads;
import static dev.panamoe.ops.kernels.KernelTestSupport.tensor;
import static dev.panamoe.ops.kernels.KernelTestSupport.threads;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The library-level kernels: pmoe_find_nonfinite and the thread-count setting the determinism checks rely on. */
class LibraryKernelTest {

    /** Scans x stored as dtype (bf16 keeps NaN and inf, and x's finite values here stay finite). */
    static long nativeFindNonfinite(int dtype, float[] x) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment first = arena.allocate(JAVA_LONG);
            first.set(JAVA_LONG, 0, 12345);
            assertOk(LIB.pmoe_find_nonfinite(dtype, x.length, tensor(arena, dtype, x), first, NO_STREAM),
                    "pmoe_find_nonfinite");
            return first.get(JAVA_LONG, 0);
        }
    }

    /** Index of the first NaN/Inf, or -1. */
    static long firstNonfinite(float[] x) {
        for (int i = 0; i < x.length; i++) if (!Float.isFinite(x[i])) return i;
        return -1;
    }

    @Test
    void findNonfiniteGivesTheFirstNaNOrInf() {
        Random rnd = new Random(81);
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0xffc00001)};
        for (int dtype : new int[] {F32, BF16})
        for (int n : new int[] {0, 1, 7, 64, 1000, 100_003}) {
            float[] x = gaussian(rnd, n, 1e30); // large but finite values must not be reported
            assertEquals(-1, nativeFindNonfinite(dtype, x), "all finite, n=" + n);
            for (int trial = 0; trial < 3 && n > 0; trial++) {
                int at = rnd.nextInt(n);
                x[at] = specials[rnd.nextInt(specials.length)];
                if (rnd.nextBoolean() && at + 1 < n) x[at + 1 + rnd.nextInt(n - at - 1)] = Float.NaN; // a later one is ignored
                assertEquals(firstNonfinite(x), nativeFindNonfinite(dtype, x), "dtype " + dtype + " n=" + n + " trial " + trial);
            }
        }
        // around the scan's 1024-element blocks: the first of two in neighbouring blocks, or in one block
        for (int dtype : new int[] {F32, BF16})
        for (int[] at : new int[][] {{1023, 1024}, {1024, 2047}, {2048, 2049}, {1500, 2500}, {2999, 0}}) {
            float[] x = gaussian(rnd, 3000, 1);
            x[at[0]] = Float.POSITIVE_INFINITY;
            if (at[1] > 0) x[at[1]] = Float.NaN;
            assertEquals(at[0], nativeFindNonfinite(dtype, x), "dtype " + dtype + " non-finite at " + Arrays.toString(at));
        }
        assertEquals(-1, nativeFindNonfinite(F32, new float[] {Float.MAX_VALUE, -Float.MAX_VALUE, Float.MIN_VALUE}));
        assertEquals(-1, nativeFindNonfinite(BF16, new float[] {0x1.fep127f, -0x1.fep127f, Float.MIN_VALUE}));
    }

    @Test
    void threadCountIsSetAndRestored() {
        int previous = threads();
        try {
            setThreads(1);
            assertEquals(1, threads());
            setThreads(3);
            assertEquals(3, threads());
        } finally {
            setThreads(previous);
        }
        assertEquals(previous, threads());
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = floats(arena, 1, 2, 3), first = arena.allocate(JAVA_LONG);
            assertInvalid(LIB.pmoe_find_nonfinite(F32, -1, x, first, NO_STREAM), "n", "-1");
            assertInvalid(LIB.pmoe_find_nonfinite(F32, 3, MemorySegment.NULL, first, NO_STREAM), "x", null);
            assertInvalid(LIB.pmoe_find_nonfinite(F32, 3, x, MemorySegment.NULL, NO_STREAM), "first_index", null);
            assertInvalid(LIB.pmoe_find_nonfinite(2, 3, x, first, NO_STREAM), "dtype", "2");
            assertInvalid(LIB.pmoe_set_num_threads(0), "n", "0");
            assertInvalid(LIB.pmoe_get_num_threads(MemorySegment.NULL), "n", null);
        }
    }

    /**
     * The frame every entry point shares (native-src/common/api.cpp): a call that succeeds clears
     * the message of an earlier failure, whether it ran (find_nonfinite of nothing still writes -1)
     * or had no work (an add of 0 elements, whose pointers may then be NULL).
     */
    @Test
    void aSuccessfulCallClearsTheMessageOfAFailedOne() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment first = arena.allocate(JAVA_LONG);
            assertInvalid(LIB.pmoe_add(F32, -1, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL,
                    NO_STREAM), "n", "-1");
            assertOk(LIB.pmoe_add(F32, 0, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, NO_STREAM),
                    "pmoe_add of no elements");
            assertEquals("", lastError());
            assertInvalid(LIB.pmoe_find_nonfinite(F32, -1, MemorySegment.NULL, first, NO_STREAM), "n", "-1");
            first.set(JAVA_LONG, 0, 12345);
            assertOk(LIB.pmoe_find_nonfinite(F32, 0, MemorySegment.NULL, first, NO_STREAM), "pmoe_find_nonfinite of nothing");
            assertEquals(-1, first.get(JAVA_LONG, 0));
            assertEquals("", lastError());
        }
    }
}
