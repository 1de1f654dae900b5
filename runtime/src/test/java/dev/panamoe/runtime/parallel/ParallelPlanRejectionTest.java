package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import org.junit.jupiter.api.Test;

/** Plans that do not fit the world, the model or the batch are refused before any rank starts, naming the constraint. */
class ParallelPlanRejectionTest {
    private static final GptMoeConfig MODEL = ParallelTraining.model(); // 4 blocks, 4 heads, 8 experts
    private static final TrainingConfig CONFIG = ParallelTraining.config(); // micro-batches of 8 sequences

    private static String rejection(String plan, int world, GptMoeConfig model, TrainingConfig config) {
        return assertThrows(IllegalArgumentException.class, () -> {
            Trainer.validate(ParallelPlan.parse(plan, world), model, config);
        }).getMessage();
    }

    @Test
    void namesTheConstraintThatFails() {
        assertEquals("plan: pp * tp * ep = 3 does not divide world 8 (\"ep=3\")", rejection("ep=3", 8, MODEL, CONFIG));
        assertEquals("plan: pp * tp * ep * dp = 16 but world is 8 (\"pp=2,dp=8\")",
                rejection("pp=2,dp=8", 8, MODEL, CONFIG));
        assertEquals("plan: pp=8 does not divide layers = 4", rejection("pp=8", 8, MODEL, CONFIG));
        assertEquals("plan: ep=8 does not divide experts = 6",
                rejection("ep=8", 8, MODEL.toBuilder().experts(6).build(), CONFIG));
        assertEquals("plan: tp=8 does not divide heads = 4", rejection("tp=8", 8, MODEL, CONFIG));
        assertEquals("batch: 8 sequences in 2 micro-batches of 4 cannot be shared by the 8 data-parallel ranks (ep * dp);"
                + " batch must be divisible by microBatches * 8",
                rejection("ep=8", 8, MODEL, CONFIG.toBuilder().batch(8).build()));
    }
}
