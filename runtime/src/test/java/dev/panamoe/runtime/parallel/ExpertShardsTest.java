package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Activation;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ExpertShardsTest {

    /** Element (r, c) of a full matrix holds 100 * r + c, so a shard shows which columns it took. */
    private static float[] indexed(int rows, int cols) {
        float[] m = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                m[r * cols + c] = 100 * r + c;
            }
        }
        return m;
    }

    @Test
    void swigluShardTakesMatchingColumnsOfGateAndUp() {
        // hidden 2, ffn 4, tp 2: W1 [2, 8] = [gate 0..3 | up 4..7]; shard 1 = gate 2,3 and up 6,7
        float[] shard = ExpertShards.shardW1(indexed(2, 8), 2, 4, Activation.SWIGLU, 1, 2);
        assertArrayEquals(new float[] {2, 3, 6, 7, 102, 103, 106, 107}, shard);
        float[] gelu = ExpertShards.shardW1(indexed(2, 4), 2, 4, Activation.GELU, 1, 2);
        assertArrayEquals(new float[] {2, 3, 102, 103}, gelu);
        float[] w2 = ExpertShards.shardW2(indexed(4, 2), 4, 2, 1, 2);
        assertArrayEquals(new float[] {200, 201, 300, 301}, w2);
    }

    @Test
    void gatherInvertsShardForEveryActivationAndDegree() {
        int hidden = 3;
        int ffn = 8;
        for (Activation act : Activation.values()) {
            for (int tp : new int[] {1, 2, 4, 8}) {
                float[] w1 = indexed(hidden, act.inputWidth(ffn));
                float[] w2 = indexed(ffn, hidden);
                List<float[]> w1Shards = new ArrayList<>();
                List<float[]> w2Shards = new ArrayList<>();
                for (int t = 0; t < tp; t++) {
                    w1Shards.add(ExpertShards.shardW1(w1, hidden, ffn, act, t, tp));
                    w2Shards.add(ExpertShards.shardW2(w2, ffn, hidden, t, tp));
                }
                assertArrayEquals(w1, ExpertShards.gatherW1(w1Shards, hidden, ffn, act), act + " tp " + tp);
                assertArrayEquals(w2, ExpertShards.gatherW2(w2Shards, ffn, hidden), act + " tp " + tp);
            }
        }
    }

    @Test
    void badShardingFailsWithTheArgumentsName() {
        var tp = assertThrows(IllegalArgumentException.class,
                () -> ExpertShards.shardW2(new float[24], 8, 3, 0, 3));
        assertTrue(tp.getMessage().startsWith("tp: 3 must be >= 1 and divide ffn 8"), tp.getMessage());
        var index = assertThrows(IllegalArgumentException.class,
                () -> ExpertShards.shardW1(new float[24], 3, 8, Activation.GELU, 2, 2));
        assertTrue(index.getMessage().startsWith("tpIndex: 2 is outside [0, tp=2)"), index.getMessage());
        var length = assertThrows(IllegalArgumentException.class,
                () -> ExpertShards.shardW1(new float[24], 3, 8, Activation.SWIGLU, 0, 2));
        assertTrue(length.getMessage().startsWith("full: expected 48 values, got 24"), length.getMessage());
    }
}
