package dev.panamoe.strategy.trace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SyntheticTraceTest {

    @Test
    void sameSeedSameTraceOtherSeedOtherTrace() {
        SyntheticTrace.Config c = SyntheticTrace.Config.of(16, 4, 3, 20, 5);
        assertEquals(SyntheticTrace.generate(c), SyntheticTrace.generate(c));
        SyntheticTrace.Config other = new SyntheticTrace.Config(16, 4, 3, 20, 1, 8192, 1.0, 0.03, 0.005, 6);
        assertNotEquals(SyntheticTrace.generate(c), SyntheticTrace.generate(other));
    }

    @Test
    void popularityIsZipfSkewedAndTotalsMatchTheTokens() {
        LoadTrace t = SyntheticTrace.generate(SyntheticTrace.Config.of(64, 8, 1, 1, 3).withSkew(1.0, 0, 0));
        long[] load = t.layerLoad(0, 0);
        long total = 0;
        long max = 0;
        for (long v : load) {
            total += v;
            max = Math.max(max, v);
        }
        assertEquals(8 * 8192, total, 8 * 8192 * 0.02);
        // Zipf 1 over 64 experts: the hottest takes 1 / H_64 = 21% on average (source skew spreads it)
        double share = (double) max / total;
        assertTrue(share > 0.14 && share < 0.32, "hottest share " + share);
    }

    @Test
    void driftAndSwapsChangeTheHottestExpert() {
        LoadTrace calm = SyntheticTrace.generate(SyntheticTrace.Config.of(32, 4, 1, 300, 9).withSkew(1.0, 0, 0));
        LoadTrace moving = SyntheticTrace.generate(SyntheticTrace.Config.of(32, 4, 1, 300, 9).withSkew(1.0, 0.05, 0.05));
        assertEquals(1, hottestExperts(calm), "without drift or swaps the hottest expert never changes");
        assertTrue(hottestExperts(moving) > 2, "hottest experts seen: " + hottestExperts(moving));
    }

    private static long hottestExperts(LoadTrace t) {
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < t.iterations(); i += 10) {
            long[] load = t.layerLoad(i, 0);
            int best = 0;
            for (int e = 1; e < load.length; e++) {
                best = load[e] > load[best] ? e : best;
            }
            seen.add(best);
        }
        return seen.size();
    }

    @Test
    void badConfigsNameTheArgument() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> SyntheticTrace.Config.of(0, 4, 1, 1, 1))
                .getMessage().startsWith("experts"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> SyntheticTrace.Config.of(8, 4, 1, 1, 1).withSkew(1, 0, 2)).getMessage().contains("swapProbability"));
    }
}
