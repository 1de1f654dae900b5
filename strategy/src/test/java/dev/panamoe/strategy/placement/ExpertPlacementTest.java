package dev.panamoe.strategy.placement;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ExpertPlacementTest {

    @Test
    void identityPutsExpertsInOrderWithFreeReplicaSlots() {
        ExpertPlacement p = ExpertPlacement.identity(8, 4, 1);
        assertEquals(3, p.slotsPerDevice());
        assertArrayEquals(new int[] {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1}, p.slotTable());
        assertArrayEquals(new int[] {4}, p.slotsOf(3));
        assertEquals(1, p.deviceOf(4));
    }

    @Test
    void replicasSplitTheirLoadEvenly() {
        ExpertPlacement p = ExpertPlacement.identity(4, 2, 1).withSlot(5, 0); // device 1's free slot copies expert 0
        assertArrayEquals(new int[] {0, 5}, p.slotsOf(0));
        assertArrayEquals(new double[] {50 + 10, 50 + 10 + 10}, p.deviceLoads(new long[] {100, 10, 10, 10}));
        assertEquals(1, p.changedSlots(ExpertPlacement.identity(4, 2, 1)));
    }

    @Test
    void rejectsTablesThatLoseAnExpertOrNameAnUnknownOne() {
        String m = assertThrows(IllegalArgumentException.class,
                () -> ExpertPlacement.of(4, 2, 2, new int[] {0, 1, 2, 2})).getMessage();
        assertTrue(m.contains("expert 3 has no slot"), m);
        m = assertThrows(IllegalArgumentException.class,
                () -> ExpertPlacement.of(4, 2, 2, new int[] {0, 1, 2, 7})).getMessage();
        assertTrue(m.contains("slotTable[3]: 7"), m);
        m = assertThrows(IllegalArgumentException.class, () -> ExpertPlacement.identity(6, 4, 0)).getMessage();
        assertTrue(m.contains("devices: 4 does not divide experts 6"), m);
    }
}
