package dev.panamoe.runtime.comm;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.TensorScope;
import org.junit.jupiter.api.Test;

/** The single device's group: every operation as a world of one in-JVM rank computes it, and bad calls refused. */
class OneRankCommunicatorTest {

    @Test
    void everyOperationMatchesThePlainJavaReferenceBitwise() {
        long checked = new CollectiveChecks(new OneRankCommunicator(), 43, true, true).runAll();
        assertTrue(checked > 1000, "compared " + checked + " elements");
    }

    @Test
    void refusesPeersOtherThanItselfAndUnmatchedMessages() {
        OneRankCommunicator comm = new OneRankCommunicator();
        try (TensorScope s = TensorScope.confined(CpuBackend.get())) {
            var t = s.allocate("t", DType.F32, 4);
            assertThrows(IllegalArgumentException.class, () -> comm.send(t, 1));
            assertThrows(IllegalStateException.class, () -> comm.recv(t, 0));
            comm.send(t, 0);
            assertThrows(IllegalArgumentException.class, () -> comm.recv(s.allocate("u", DType.F32, 3), 0));
            assertThrows(IllegalArgumentException.class,
                    () -> comm.allToAllV(t, new int[] {4}, s.allocate("r", DType.F32, 4), new int[] {3}));
            assertThrows(IllegalArgumentException.class, () -> comm.broadcast(t, 1));
        }
    }
}
