package dev.panamoe.runtime.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class InJvmCommunicatorTest {
    private static final Duration LONG = Duration.ofSeconds(30);
    private static final Duration SHORT = Duration.ofMillis(800);

    @ParameterizedTest(name = "{0} ranks, confined scopes {1}")
    @CsvSource({"1, false", "2, true", "3, false", "3, true", "8, false", "8, true"})
    void everyOperationMatchesThePlainJavaReferenceBitwise(int ranks, boolean confined) {
        List<Long> checked = InJvmWorld.run(ranks, LONG,
                comm -> new CollectiveChecks(comm, 42 + ranks, true, confined).runAll());
        assertEquals(ranks, checked.size());
        for (long c : checked) {
            assertTrue(c > 1000, "each rank compared " + c + " elements");
        }
    }

    @Test
    void splitGroupsAreIndependentAndNest() {
        // 8 ranks -> 2 groups of 4 by rank / 4 -> each split again by parity: the innermost group
        // of world rank r is {r, r ^ 2} within its half.
        List<int[]> info = InJvmWorld.run(8, LONG, comm -> {
            try (Communicator half = comm.split(comm.rank() / 4, comm.rank());
                 Communicator pair = half.split(half.rank() % 2, 0);
                 TensorScope scope = TensorScope.shared(CpuBackend.get())) {
                Tensor t = scope.ofInts("r", new int[] {comm.rank()}, 1);
                pair.allReduce(t);
                return new int[] {half.rank(), half.size(), pair.rank(), pair.size(), t.getInt(0)};
            }
        });
        for (int r = 0; r < 8; r++) {
            int[] i = info.get(r);
            int partner = (r & ~2) + ((r & 2) ^ 2);
            assertEquals(r % 4, i[0], "half rank of " + r);
            assertEquals(4, i[1]);
            assertEquals((r % 4) / 2, i[2], "pair rank of " + r);
            assertEquals(2, i[3]);
            assertEquals(r + partner, i[4], "pair sum of " + r);
        }
    }

    @Test
    void wrongCountsNameTheArgumentAndValue() {
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(2, LONG, comm -> {
            try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
                Tensor t = scope.allocate("t", DType.F32, 4);
                comm.allToAllV(t, new int[] {1, 1, 1}, t, new int[] {1, 1});
                return null;
            }
        }));
        IllegalArgumentException cause = assertInstanceOf(IllegalArgumentException.class, e.getCause());
        assertTrue(cause.getMessage().startsWith("sendCounts: expected 2 counts"), cause.getMessage());
        assertTrue(cause.getMessage().contains("[1, 1, 1]"), cause.getMessage());
    }

    @Test
    void countsThatDisagreeBetweenRanksFailOnEveryRank() {
        AtomicInteger failed = new AtomicInteger();
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(2, LONG, comm -> {
            try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
                Tensor t = scope.allocate("t", DType.F32, 8);
                int[] recv = comm.rank() == 0 ? new int[] {1, 3} : new int[] {2, 2}; // rank 1 sends 1 to rank 0
                comm.allToAllV(t, new int[] {1, 2}, t, recv);
                return null;
            } catch (IllegalArgumentException x) {
                failed.incrementAndGet();
                throw x;
            }
        }));
        assertEquals(2, failed.get(), "both ranks see the mismatch");
        assertTrue(e.getCause().getMessage().contains("recvCounts[1]: rank 0 expects 3 elements from rank 1, but rank 1 sends 1 (its sendCounts[0])"),
                e.getCause().getMessage());
    }

    @Test
    void badPeerRootAndSizesNameTheArgument() {
        assertCause(comm -> comm.send(tensor(3), 2), "peer: 2 is out of range for a group of 2 ranks");
        assertCause(comm -> comm.recv(tensor(3), -1), "peer: -1 is out of range");
        assertCause(comm -> comm.broadcast(tensor(3), 5), "root: 5 is out of range");
        assertCause(comm -> comm.allGather(tensor(3), tensor(5)), "out: expected 2 x 3 = 6 elements");
        assertCause(comm -> comm.reduceScatter(tensor(5), tensor(2)), "in: expected 2 x 2 = 4 elements");
        assertCause(comm -> comm.allReduce(tensor(3 + comm.rank())), "data: rank 1 passes 4 f32 elements but rank 0 passes 3");
        assertCause(comm -> {
            if (comm.rank() == 0) {
                comm.send(tensor(3), 1);
            } else {
                comm.recv(tensor(4), 0);
            }
        }, "data: rank 0 sent 3 f32 elements but rank 1 receives into");
        assertCause(comm -> comm.split(-1, 0), "color: must be >= 0, got -1");
    }

    @Test
    void aRankThatNeverArrivesMakesEveryOtherRankThrowWithinTheTimeout() {
        AtomicLongArray threwAfterMs = new AtomicLongArray(4);
        long start = System.nanoTime();
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(4, SHORT, comm -> {
            if (comm.rank() == 3) {
                sleep(Duration.ofSeconds(60)); // never reaches the collective
            }
            try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
                comm.allReduce(scope.allocate("t", DType.F32, 4));
            } catch (CommunicatorException x) {
                threwAfterMs.set(comm.rank(), (System.nanoTime() - start) / 1_000_000);
                throw x;
            }
            return null;
        }));
        assertEquals(3, e.failedRank(), e.getMessage());
        assertTrue(e.getMessage().contains("timed out") && e.getMessage().contains("[3] did not arrive"), e.getMessage());
        for (int r = 0; r < 3; r++) {
            long ms = threwAfterMs.get(r);
            assertTrue(ms >= SHORT.toMillis() - 50 && ms < SHORT.toMillis() + 1000, "rank " + r + " threw after " + ms + " ms");
        }
    }

    @Test
    void aRankThatThrowsMidStepStopsTheOthersAndIsReportedOnce() {
        AtomicReferenceArray<CommunicatorException> seen = new AtomicReferenceArray<>(8);
        long start = System.nanoTime();
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(8, LONG, comm -> {
            try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
                Tensor t = scope.allocate("grad", DType.F32, 64);
                for (int step = 0; step < 100; step++) {
                    if (comm.rank() == 5 && step == 3) {
                        throw new IllegalStateException("boom in step " + step);
                    }
                    comm.allReduce(t);
                }
            } catch (CommunicatorException x) {
                seen.set(comm.rank(), x);
                throw x;
            }
            return null;
        }));
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ms < 5000, "stopped after " + ms + " ms, long before the 30 s timeout");
        assertEquals(5, e.failedRank());
        IllegalStateException root = assertInstanceOf(IllegalStateException.class, e.getCause());
        assertEquals("boom in step 3", root.getMessage());
        assertEquals("in-JVM world of 8 ranks: rank 5 failed: java.lang.IllegalStateException: boom in step 3", e.getMessage());
        assertEquals(0, e.getSuppressed().length, "reported once");
        for (int r = 0; r < 8; r++) {
            if (r != 5) {
                assertNotNull(seen.get(r), "rank " + r + " stopped with an exception");
                assertEquals(5, seen.get(r).failedRank());
                assertTrue(seen.get(r).getMessage().contains("rank 5 failed: java.lang.IllegalStateException: boom"),
                        seen.get(r).getMessage());
            }
        }
    }

    @Test
    void ranksThatCallDifferentCollectivesAllThrow() {
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(3, LONG, comm -> {
            if (comm.rank() == 1) {
                comm.barrier();
            } else {
                comm.allReduce(tensor(2));
            }
            return null;
        }));
        assertTrue(e.getMessage().contains("collectives diverged"), e.getMessage());
    }

    @Test
    void explicitAbortReachesSplitGroupsAndAClosedHandleRefusesCalls() {
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(4, LONG, comm -> {
            Communicator pair = comm.split(comm.rank() / 2, 0);
            if (comm.rank() == 2) {
                comm.abort(new RuntimeException("operator asked to stop"));
                return null;
            }
            pair.barrier(); // rank 3 waits for rank 2, which never comes: the abort ends the wait
            return null;
        }));
        assertEquals(2, e.failedRank());
        assertEquals("operator asked to stop", e.getCause().getMessage());

        Communicator closed = InJvmWorld.create(1, LONG).getFirst();
        closed.close();
        IllegalStateException x = assertThrows(IllegalStateException.class, closed::barrier);
        assertTrue(x.getMessage().startsWith("communicator: in-jvm rank 0 of 1"), x.getMessage());
    }

    // ---- helpers ----

    private static final ThreadLocal<TensorScope> SCOPE = ThreadLocal.withInitial(() -> TensorScope.shared(CpuBackend.get()));

    private static Tensor tensor(int n) {
        return SCOPE.get().allocate("t", DType.F32, n);
    }

    private static void assertCause(java.util.function.Consumer<Communicator> call, String messageStart) {
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> InJvmWorld.run(2, LONG, comm -> {
            call.accept(comm);
            return null;
        }));
        IllegalArgumentException cause = assertInstanceOf(IllegalArgumentException.class, e.getCause(), e.toString());
        assertTrue(cause.getMessage().startsWith(messageStart), cause.getMessage());
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
