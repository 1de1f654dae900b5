package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class TensorSliceTest {
    /** [2, 6]: value = 10 * row + column. */
    private static final float[] FULL = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
    private static final int[] SHAPE = {2, 6};

    @Test
    void columnsRowsAndQkvHeads() {
        assertArrayEquals(new int[] {2, 3}, TensorSlice.columns(1, 2).shape(SHAPE));
        assertArrayEquals(new float[] {3, 4, 5, 13, 14, 15}, TensorSlice.columns(1, 2).of(FULL, SHAPE));
        assertArrayEquals(new float[] {10, 11, 12, 13, 14, 15}, TensorSlice.rows(1, 2).of(FULL, SHAPE));
        // q | k | v of width 2 each, 2 parts: part 0 holds column 0 of each, part 1 column 1 of each
        assertArrayEquals(new int[] {2, 3}, TensorSlice.qkvColumns(1, 2).shape(SHAPE));
        assertArrayEquals(new float[] {1, 3, 5, 11, 13, 15}, TensorSlice.qkvColumns(1, 2).of(FULL, SHAPE));
        // a vector is one row
        assertArrayEquals(new float[] {0, 2, 4}, TensorSlice.qkvColumns(0, 2).of(new float[] {0, 1, 2, 3, 4, 5},
                new int[] {6}));
        assertArrayEquals(FULL, TensorSlice.WHOLE.of(FULL, SHAPE));
    }

    @Test
    void placePutsEverySliceBackWhereOfTookIt() {
        List<List<TensorSlice>> partitions = List.of(List.of(TensorSlice.WHOLE),
                List.of(TensorSlice.columns(0, 2), TensorSlice.columns(1, 2)),
                List.of(TensorSlice.columns(0, 3), TensorSlice.columns(1, 3), TensorSlice.columns(2, 3)),
                List.of(TensorSlice.qkvColumns(0, 2), TensorSlice.qkvColumns(1, 2)),
                List.of(TensorSlice.rows(0, 2), TensorSlice.rows(1, 2)));
        for (List<TensorSlice> partition : partitions) {
            float[] full = new float[FULL.length];
            Arrays.fill(full, Float.NaN);
            for (TensorSlice s : partition) {
                s.place(s.of(FULL, SHAPE), full, SHAPE);
            }
            assertArrayEquals(FULL, full, partition.toString());
        }
        String m = assertThrows(IllegalArgumentException.class,
                () -> TensorSlice.rows(1, 2).place(new float[5], new float[12], SHAPE)).getMessage();
        assertTrue(m.startsWith("slice: 5 values, expected 6"), m);
    }

    @Test
    void refusesWhatDoesNotDivide() {
        String m = assertThrows(IllegalArgumentException.class, () -> TensorSlice.columns(0, 4).shape(SHAPE)).getMessage();
        assertTrue(m.startsWith("columns: 6 is not divisible by 4"), m);
        m = assertThrows(IllegalArgumentException.class, () -> new TensorSlice(TensorSlice.Kind.ROWS, 1, 2, 2))
                .getMessage();
        assertTrue(m.contains("0 <= part < parts, got 1, 2, 2"), m);
        m = assertThrows(IllegalArgumentException.class, () -> TensorSlice.rows(0, 2).of(new float[5], SHAPE))
                .getMessage();
        assertTrue(m.startsWith("full: 5 values for shape [2, 6]"), m);
    }
}
