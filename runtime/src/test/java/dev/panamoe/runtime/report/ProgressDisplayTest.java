package dev.panamoe.runtime.report;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProgressDisplayTest {

    /** Runs steps {@code startStep+1..totalSteps}, each taking {@code nanosPerStep}; returns the printed lines. */
    static List<String> run(long totalSteps, long startStep, long nanosPerStep) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        long[] now = {0};
        try (var out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
             var display = new ProgressDisplay.Lines(out, totalSteps, startStep, () -> now[0])) {
            for (long step = startStep + 1; step <= totalSteps; step++) {
                now[0] += nanosPerStep;
                display.update(new StepMetrics(step, 2.0 + 1.0 / step, step % 50 == 0 ? 2.5 : Double.NaN,
                        12_345, 0.01, 1e-3, 1, new int[][] {{1, 1}}));
            }
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertFalse(text.contains("\r") || text.contains("\u001b"), "plain output must not redraw: " + text);
        return new ArrayList<>(text.lines().toList());
    }

    @Test
    void plainLinesAtFirstStepEveryFivePercentAndLastStep() {
        List<String> lines = run(200, 0, 100_000_000L); // 0.1 s per step: 20 s in all, never the time rule
        assertEquals(21, lines.size(), String.join("\n", lines));
        assertEquals("step 1/200   0%  loss 3.0000  12.3k tok/s  elapsed 0:00:00  eta 0:00:19", lines.getFirst());
        assertEquals("step 10/200   5%  loss 2.1000  12.3k tok/s  elapsed 0:00:01  eta 0:00:19", lines.get(1));
        assertEquals("step 100/200  50%  loss 2.0100  val 2.5000  12.3k tok/s  elapsed 0:00:10  eta 0:00:10", lines.get(10));
        assertEquals("step 200/200 100%  loss 2.0050  val 2.5000  12.3k tok/s  elapsed 0:00:20  eta 0:00:00", lines.getLast());
    }

    @Test
    void slowStepsPrintAtLeastEveryThirtySeconds() {
        List<String> lines = run(1000, 0, 11_000_000_000L); // 11 s per step: 3 steps (33 s) at most between lines
        long previous = 1;
        for (String line : lines.subList(1, lines.size())) {
            long step = Long.parseLong(line.substring("step ".length(), line.indexOf('/')));
            assertTrue(step - previous <= 3 && step - previous >= 1, previous + " then " + line);
            previous = step;
        }
        assertEquals(1000, previous);
        assertTrue(lines.size() <= 1000 / 3 + 21, "lines: " + lines.size());
        assertTrue(lines.get(1).startsWith("step 4/1000"), lines.get(1));
    }

    @Test
    void resumedRunMeasuresOnlyItsOwnSteps() {
        List<String> lines = run(100, 60, 1_000_000_000L);
        assertEquals("step 61/100  61%  loss 2.0164  12.3k tok/s  elapsed 0:00:01  eta 0:00:39", lines.getFirst());
        assertEquals("step 100/100 100%  loss 2.0100  val 2.5000  12.3k tok/s  elapsed 0:00:40  eta 0:00:00", lines.getLast());
        assertEquals(9, lines.size()); // 61, 65, 70, ..., 100
    }

    @Test
    void badStepRangesFailWithTheValue() {
        var out = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        var e = assertThrows(IllegalArgumentException.class, () -> ProgressDisplay.lines(out, 0, 0));
        assertEquals("totalSteps must be >= 1, got 0", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ProgressDisplay.lines(out, 10, 11));
        assertEquals("startStep must be in [0, 10], got 11", e.getMessage());
    }

    @Test
    void testsDoNotRunOnAnInteractiveTerminal() {
        // Surefire pipes the test JVM's output, so open() must pick plain lines here (and in CI).
        assertFalse(ProgressDisplay.isInteractiveTerminal());
        try (ProgressDisplay display = ProgressDisplay.open(10, 0)) {
            assertTrue(display instanceof ProgressDisplay.Lines, display.getClass().getName());
        }
    }
}
