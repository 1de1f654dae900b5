package dev.panamoe.jmh;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/** libpmoe_peak.so through CpuLevel: the FLOP counts PeakRateBenchmark's GFLOP/s rest on, and the CPU guard. */
class CpuLevelTest {

    @Test
    void everyCallDoesExactlyTheAdvertisedWork() {
        Map<CpuLevel, Double> flops = Map.of(CpuLevel.AVX2, 12.0 * 8 * 2, CpuLevel.AVX512, 24.0 * 16 * 2,
                CpuLevel.AVX512_BF16, 24.0 * 16 * 4);
        for (CpuLevel level : CpuLevel.values()) {
            assertEquals(flops.get(level), level.flopsPerIteration(), level.isaName());
            long iterations = PeakRateBenchmark.iterationsPerCall(level.flopsPerIteration());
            assertEquals(PeakRateBenchmark.MFLOP_PER_CALL * 1e6, iterations * level.flopsPerIteration(), level.isaName());
        }
        assertThrows(IllegalStateException.class, () -> PeakRateBenchmark.iterationsPerCall(7));
    }

    @Test
    void chainsRunWhereTheCpuHasTheLevelAndAreRefusedWhereItLacksIt() {
        for (CpuLevel level : CpuLevel.values()) {
            if (level.missingFeature().isPresent()) {
                var e = assertThrows(UnsupportedOperationException.class, level::requireSupported);
                assertTrue(e.getMessage().startsWith(level.isaName() + " skipped: CPU lacks "), e.getMessage());
                assertTrue(Float.isNaN(level.runChains(10)), "the library itself refuses " + level.isaName());
            } else {
                level.requireSupported();
                float sum = level.runChains(1000);
                assertTrue(Float.isFinite(sum) && sum > 0, level.isaName() + ": " + sum);
            }
            assertTrue(Float.isNaN(level.runChains(-1)), "negative iterations are refused");
        }
    }

    @Test
    void isaNamesAreThoseOfPmoeCpuIsa() {
        assertEquals(CpuLevel.AVX512_BF16, CpuLevel.named("avx512_bf16"));
        var e = assertThrows(IllegalArgumentException.class, () -> CpuLevel.named("sse2"));
        assertEquals("isa: unknown level 'sse2', expected one of avx2, avx512, avx512_bf16", e.getMessage());
    }
}
