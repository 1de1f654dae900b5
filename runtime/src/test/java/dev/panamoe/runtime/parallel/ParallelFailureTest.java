package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.CommunicatorException;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.train.TrainingConfig;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A rank that throws in the middle of a training step stops the whole world: every other rank is
 * then blocked in (or about to enter) a collective of the same step, and must stop within the
 * collective timeout; the run fails once, with the failed rank and its exception.
 */
class ParallelFailureTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    /** Fails on its calls-th communication call, counting those of the groups split from it too. */
    private record FailingCommunicator(Communicator inner, AtomicInteger calls, int failAt) implements Communicator {
        private void count() {
            if (calls.incrementAndGet() == failAt) {
                throw new IllegalStateException("injected failure at communication call " + failAt);
            }
        }

        @Override public int rank() { return inner.rank(); }
        @Override public int size() { return inner.size(); }
        @Override public String backendName() { return inner.backendName(); }
        @Override public Duration timeout() { return inner.timeout(); }
        @Override public void allReduce(Tensor data) { count(); inner.allReduce(data); }
        @Override public void reduceScatter(Tensor in, Tensor out) { count(); inner.reduceScatter(in, out); }
        @Override public void allGather(Tensor in, Tensor out) { count(); inner.allGather(in, out); }
        @Override public void allToAllV(Tensor send, int[] sendCounts, Tensor recv, int[] recvCounts) {
            count();
            inner.allToAllV(send, sendCounts, recv, recvCounts);
        }
        @Override public void broadcast(Tensor data, int root) { count(); inner.broadcast(data, root); }
        @Override public void send(Tensor data, int peer) { count(); inner.send(data, peer); }
        @Override public void recv(Tensor data, int peer) { count(); inner.recv(data, peer); }
        @Override public void barrier() { count(); inner.barrier(); }
        @Override public Communicator split(int color, int key) {
            return new FailingCommunicator(inner.split(color, key), calls, failAt);
        }
        @Override public void abort(Throwable cause) { inner.abort(cause); }
        @Override public void close() { inner.close(); }
    }

    @Test
    void aRankFailingMidStepStopsEveryRankWithItsError() {
        GptMoeConfig model = ParallelTraining.model();
        TrainingConfig config = ParallelTraining.config();
        int failingRank = 5;
        // well into the first step: past the group creation and several pipeline, expert and TP calls
        int failAt = 40;
        long start = System.nanoTime();
        CommunicatorException e = assertThrows(CommunicatorException.class,
                () -> ParallelTraining.parallel("pp2*tp2*ep2", 8, model, config, TIMEOUT, comm -> comm.rank() == failingRank
                        ? new FailingCommunicator(comm, new AtomicInteger(), failAt) : comm));
        double seconds = (System.nanoTime() - start) / 1e9;
        assertEquals(failingRank, e.failedRank(), e.getMessage());
        assertInstanceOf(IllegalStateException.class, e.getCause(), e.getMessage());
        assertEquals("injected failure at communication call " + failAt, e.getCause().getMessage());
        assertTrue(e.getMessage().contains("rank " + failingRank), e.getMessage());
        assertEquals(0, e.getSuppressed().length, "the failure is reported once");
        assertTrue(seconds < TIMEOUT.toSeconds(), "every rank stopped within the timeout, took " + seconds + " s");
    }
}
