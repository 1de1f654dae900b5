package dev.panamoe.runtime.report;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OperatorTimerTest {

    /** A clock the test moves by hand. */
    static final class FakeClock {
        long now = 1_000;

        void advance(long nanos) {
            now += nanos;
        }
    }

    @Test
    void sharesAreEachOperatorsTimeOverTheTotalAndSumToOne() {
        FakeClock clock = new FakeClock();
        OperatorTimer timer = new OperatorTimer(() -> clock.now);
        for (int step = 0; step < 3; step++) {
            try (var t = timer.start("attention")) {
                clock.advance(500);
            }
            try (var t = timer.start("moe.experts")) {
                clock.advance(300);
            }
            clock.advance(10_000); // untimed work counts nowhere
            try (var t = timer.start("optimizer")) {
                clock.advance(200);
            }
        }
        timer.add("moe.dispatch", 1_000);

        List<OperatorTimer.Entry> entries = timer.entries();
        assertEquals(List.of(
                new OperatorTimer.Entry("attention", 1500, 3, 0.375),
                new OperatorTimer.Entry("moe.dispatch", 1000, 1, 0.25),
                new OperatorTimer.Entry("moe.experts", 900, 3, 0.225),
                new OperatorTimer.Entry("optimizer", 600, 3, 0.15)), entries);
        assertEquals(4000, timer.totalNanos());
        assertEquals(1.0, entries.stream().mapToDouble(OperatorTimer.Entry::share).sum(), 1e-12);
    }

    @Test
    void sharesSumToOneWithTheRealClock() throws InterruptedException {
        OperatorTimer timer = new OperatorTimer();
        for (String name : List.of("embedding", "attention", "moe.router", "lm_head"))
            try (var t = timer.start(name)) {
                Thread.sleep(2);
            }
        assertEquals(4, timer.entries().size());
        assertTrue(timer.entries().stream().allMatch(e -> e.nanos() >= 2_000_000), timer.table());
        assertEquals(1.0, timer.entries().stream().mapToDouble(OperatorTimer.Entry::share).sum(), 1e-12);
    }

    @Test
    void tableListsEveryOperatorWithItsShare() {
        FakeClock clock = new FakeClock();
        OperatorTimer timer = new OperatorTimer(() -> clock.now);
        try (var t = timer.start("lm_head")) {
            clock.advance(3_000_000);
        }
        try (var t = timer.start("embedding")) {
            clock.advance(1_000_000);
        }
        String[] lines = timer.table().split("\n");
        assertEquals(3, lines.length);
        assertTrue(lines[0].startsWith("operator"), lines[0]);
        assertEquals(List.of("lm_head", "3.0", "1", "3000.0", "75.0%"), List.of(lines[1].trim().split("\\s+")));
        assertEquals(List.of("embedding", "1.0", "1", "1000.0", "25.0%"), List.of(lines[2].trim().split("\\s+")));
    }

    @Test
    void misuseFailsWithTheOperatorName() {
        OperatorTimer timer = new OperatorTimer();
        OperatorTimer.Span span = timer.start("attention");
        var e = assertThrows(IllegalStateException.class, () -> timer.start("attention"));
        assertEquals("operator timer 'attention' is already running", e.getMessage());
        e = assertThrows(IllegalStateException.class, timer::reset);
        assertEquals("operator timer 'attention' is still running", e.getMessage());
        span.close();
        e = assertThrows(IllegalStateException.class, span::close);
        assertEquals("operator timer 'attention' is not running", e.getMessage());
        var bad = assertThrows(IllegalArgumentException.class, () -> timer.add("optimizer", -5));
        assertEquals("nanos for 'optimizer' must be >= 0, got -5", bad.getMessage());

        timer.reset();
        assertEquals(List.of(), timer.entries());
        assertEquals(0, timer.totalNanos());
    }
}
