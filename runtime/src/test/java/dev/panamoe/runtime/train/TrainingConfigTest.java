package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

class TrainingConfigTest {

    private static String error(UnaryOperator<TrainingConfig.Builder> change) {
        return assertThrows(IllegalArgumentException.class, () -> change.apply(TrainingConfig.builder()).build())
                .getMessage();
    }

    @Test
    void eachBadValueIsNamedWithItsValue() {
        assertEquals("steps: must be >= 1, got 0", error(b -> b.steps(0)));
        assertEquals("batch: must be >= 1, got -2", error(b -> b.batch(-2)));
        assertEquals("microBatches: must divide batch=16, got 3", error(b -> b.microBatches(3)));
        assertEquals("seq: must be >= 1, got 0", error(b -> b.seq(0)));
        assertEquals("lr: must be finite and > 0, got NaN", error(b -> b.lr(Float.NaN)));
        assertEquals("minLr: must be in [0, lr=0.003], got 0.01", error(b -> b.minLr(0.01f)));
        assertEquals("warmup: must be in [0, steps=200], got 201", error(b -> b.warmup(201)));
        assertEquals("weightDecay: must be finite and >= 0, got -0.1", error(b -> b.weightDecay(-0.1f)));
        assertEquals("beta1: must be in [0, 1), got 1.0", error(b -> b.beta1(1f)));
        assertEquals("beta2: must be in [0, 1), got -0.5", error(b -> b.beta2(-0.5f)));
        assertEquals("eps: must be finite and > 0, got 0.0", error(b -> b.eps(0f)));
        assertEquals("clipNorm: must be finite and >= 0 (0 = off), got Infinity", error(b -> b.clipNorm(Float.POSITIVE_INFINITY)));
        assertEquals("evalEvery: must be >= 0, got -1", error(b -> b.evalEvery(-1)));
        assertEquals("evalBatches: must be >= 1, got 0", error(b -> b.evalBatches(0)));
        assertEquals("checkpointEvery: must be >= 0, got -5", error(b -> b.checkpointEvery(-5)));
        assertEquals("stopAt: must be in [1, steps=200], got 300", error(b -> b.stopAt(300)));
        assertEquals("gradReduce: must be fp32 or bf16, got auto", error(b -> b.gradReduce(Precision.AUTO)));
        assertEquals("gradReduce: bf16 sums the gradients of a bf16 run, but precision is fp32 (use precision bf16 "
                + "or auto)", error(b -> b.gradReduce(Precision.BF16)));
    }

    /**
     * Gradients are summed in fp32 unless a bf16 (or auto) run asks for bf16; a checkpoint's
     * training fields written before the option existed read back as fp32.
     */
    @Test
    void gradientsAreSummedInFp32UnlessABf16RunAsks() {
        assertEquals(Precision.FP32, TrainingConfig.builder().build().gradReduce());
        TrainingConfig auto = TrainingConfig.builder().precision(Precision.AUTO).gradReduce(Precision.BF16).build();
        assertEquals("bf16", auto.toMap().get("gradReduce"));
        assertEquals(auto, RecordFields.parse(TrainingConfig.class, auto.toMap()));
        Map<String, String> before = new LinkedHashMap<>(auto.toMap());
        before.remove("gradReduce");
        assertEquals(Precision.FP32, RecordFields.parse(TrainingConfig.class, before).gradReduce());
    }

    @Test
    void stopAtDefaultsToTheLastStepAndCheckpointsFollowTheConfig() {
        TrainingConfig c = TrainingConfig.builder().steps(10).batch(8).microBatches(4).evalEvery(4).build();
        assertEquals(10, c.stopAt());
        assertEquals(2, c.microBatchSize());
        assertTrue(c.evaluatesAt(4) && c.evaluatesAt(8) && c.evaluatesAt(10));
        assertFalse(c.evaluatesAt(5));
        assertFalse(c.checkpointsAt(10), "no directory, no checkpoint");
        TrainingConfig k = c.toBuilder().checkpointDir(Path.of("ck")).checkpointEvery(3).stopAt(7).build();
        assertTrue(k.checkpointsAt(3) && k.checkpointsAt(6) && k.checkpointsAt(7) && k.checkpointsAt(10));
        assertFalse(k.checkpointsAt(4));
        assertEquals("7", k.toMap().get("stopAt"));
        assertEquals("ck", k.toMap().get("checkpointDir"));
        assertEquals("", c.toMap().get("metrics"));
    }
}
