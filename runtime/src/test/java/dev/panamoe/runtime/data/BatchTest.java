package dev.panamoe.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class BatchTest {

    @Test
    void inputsAndTargetsAreTheShiftedRows() {
        var batch = new Batch(Split.TRAIN, 10, 2, 3, new int[] {1, 2, 3, 4, 5, 6, 7, 8}, new int[] {0, 1});
        assertArrayEquals(new int[] {1, 2, 3, 5, 6, 7}, batch.inputs());
        assertArrayEquals(new int[] {2, 3, 4, 6, 7, 8}, batch.targets());
        assertEquals(7, batch.token(1, 2));
        assertEquals(12, batch.nextPosition());
    }

    @Test
    void shapesMustMatch() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> new Batch(Split.TRAIN, 0, 2, 3, new int[7], new int[2]));
        assertTrue(e.getMessage().contains("tokens has length 7"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Batch(Split.TRAIN, 0, 2, 3, new int[8], new int[3]));
        assertTrue(e.getMessage().contains("sources has length 3"), e.getMessage());
    }
}
