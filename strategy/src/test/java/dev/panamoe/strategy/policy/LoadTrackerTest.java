package dev.panamoe.strategy.policy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class LoadTrackerTest {

    @Test
    void keepsTheLastWindowIterationsPerLayer() {
        LoadTracker t = new LoadTracker(2, 3, 2);
        t.record(0, new long[] {1, 2, 3});
        t.record(0, new long[] {10, 20, 30});
        t.record(0, new long[] {100, 200, 300});
        t.record(1, new long[] {5, 5, 5});
        assertEquals(3, t.recorded(0));
        assertEquals(2, t.size(0));
        assertEquals(1, t.size(1));
        assertArrayEquals(new long[] {110, 220, 330}, t.windowSum(0));
        assertArrayEquals(new long[] {100, 200, 300}, t.recent(0, 0));
        assertArrayEquals(new long[] {10, 20, 30}, t.recent(0, 1));
        assertArrayEquals(new double[] {55, 110, 165}, t.mean(0, 5));
        assertArrayEquals(new double[] {100, 200, 300}, t.mean(0, 1));
        assertArrayEquals(new double[] {5, 5, 5}, t.mean(1, 2));
        t.clear();
        assertEquals(0, t.size(0));
        assertArrayEquals(new double[3], t.mean(0, 2));
    }

    @Test
    void badInputNamesTheArgument() {
        LoadTracker t = new LoadTracker(1, 2, 4);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> t.record(1, new long[2])).getMessage()
                .startsWith("layer: 1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> t.record(0, new long[3])).getMessage()
                .startsWith("counts: expected 2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> t.record(0, new long[] {1, -1})).getMessage()
                .contains("negative"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> t.recent(0, 0)).getMessage()
                .startsWith("age"));
    }
}
