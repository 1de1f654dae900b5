package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class LrScheduleTest {

    @Test
    void warmsUpLinearlyThenDecaysAlongACosineToTheMinimum() {
        LrSchedule s = new LrSchedule(1e-3f, 1e-4f, 10, 110);
        assertEquals(1e-4f, s.at(1), 1e-9);
        assertEquals(5e-4f, s.at(5), 1e-9);
        assertEquals(1e-3f, s.at(10), 1e-9);
        // Halfway through the decay the cosine is at 0: the mean of peak and minimum.
        assertEquals(5.5e-4f, s.at(60), 1e-9);
        // A quarter of the way: min + (max - min) * (1 + cos(pi/4)) / 2.
        assertEquals(1e-4 + 9e-4 * (1 + Math.cos(Math.PI / 4)) / 2, s.at(35), 1e-9);
        assertEquals(1e-4f, s.at(110), 1e-9);
        for (int step = 11; step <= 110; step++) {
            assertTrue(s.at(step) < s.at(step - 1), "decreasing at step " + step);
        }
    }

    @Test
    void withoutWarmUpTheFirstStepIsJustBelowThePeak() {
        LrSchedule s = new LrSchedule(2e-3f, 0f, 0, 4);
        assertEquals(2e-3 * (1 + Math.cos(Math.PI / 4)) / 2, s.at(1), 1e-9);
        assertEquals(0f, s.at(4));
    }

    @Test
    void allWarmUpEndsAtThePeak() {
        LrSchedule s = new LrSchedule(1e-3f, 1e-4f, 4, 4);
        assertEquals(2.5e-4f, s.at(1), 1e-9);
        assertEquals(1e-3f, s.at(4), 1e-9);
    }

    @Test
    void isAFunctionOfTheTrainingConfig() {
        TrainingConfig c = TrainingConfig.builder().steps(50).lr(4e-3f).minLr(4e-4f).warmup(5).build();
        LrSchedule s = LrSchedule.of(c);
        assertEquals(new LrSchedule(4e-3f, 4e-4f, 5, 50), s);
        assertEquals(4e-3f, s.at(5), 1e-9);
    }

    @Test
    void rejectsStepsOutsideTheRun() {
        LrSchedule s = new LrSchedule(1e-3f, 1e-4f, 2, 10);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> s.at(0)).getMessage().contains("step: must be in [1, 10], got 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> s.at(11)).getMessage().contains("got 11"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new LrSchedule(1e-3f, 1e-2f, 0, 10))
                .getMessage().contains("minLr"));
    }
}
