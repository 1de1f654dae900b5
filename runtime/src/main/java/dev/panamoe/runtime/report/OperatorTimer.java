package dev.panamoe.runtime.report;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Wall time per operator, accumulated over a run: the trainer wraps each operator call,
 * <pre>{@code
 * try (var t = timer.start("moe.router")) { router.forward(...); }
 * }</pre>
 * and the report shows each operator's share of the total. Shares are of the sum of all timers,
 * so time leaves only (never nest one timer inside another): nesting counts the inner time twice.
 * Starting a timer that is already running (the same name nested in itself) is an error.
 *
 * <p>Cost per call: one hash lookup and two {@code System.nanoTime()} reads; the returned span is the
 * operator's own accumulator, so nothing is allocated. Not thread-safe: one timer per training thread.
 */
public final class OperatorTimer {

    /** Accumulated time of one operator; also the handle that stops its running span. */
    public static final class Span implements AutoCloseable {
        private final String name;
        private final LongSupplier clock;
        private long nanos;
        private long calls;
        private long startedAt = -1;

        private Span(String name, LongSupplier clock) {
            this.name = name;
            this.clock = clock;
        }

        /** Stops the span and adds its time to the operator. */
        @Override
        public void close() {
            if (startedAt < 0)
                throw new IllegalStateException("operator timer '" + name + "' is not running");
            nanos += clock.getAsLong() - startedAt;
            calls++;
            startedAt = -1;
        }
    }

    /**
     * One operator's total.
     *
     * @param name  operator name as given to {@link #start}
     * @param nanos total wall time, in nanoseconds
     * @param calls number of timed calls
     * @param share {@code nanos} over the sum of all operators' nanos (0 when nothing was timed)
     */
    public record Entry(String name, long nanos, long calls, double share) {
    }

    private final LongSupplier clock;
    private final Map<String, Span> spans = new LinkedHashMap<>();

    public OperatorTimer() {
        this(System::nanoTime);
    }

    /** A timer reading {@code clock} (nanoseconds) instead of {@code System.nanoTime()}; for tests. */
    OperatorTimer(LongSupplier clock) {
        this.clock = clock;
    }

    /** Starts timing {@code name}; close the returned span when the operator is done. */
    public Span start(String name) {
        Span span = spans.computeIfAbsent(name, n -> new Span(n, clock));
        if (span.startedAt >= 0)
            throw new IllegalStateException("operator timer '" + name + "' is already running");
        span.startedAt = clock.getAsLong();
        return span;
    }

    /** Adds time measured elsewhere (e.g. by the device) to {@code name}, as one call. */
    public void add(String name, long nanos) {
        if (nanos < 0)
            throw new IllegalArgumentException("nanos for '" + name + "' must be >= 0, got " + nanos);
        Span span = spans.computeIfAbsent(name, n -> new Span(n, clock));
        span.nanos += nanos;
        span.calls++;
    }

    /** Forgets all totals (e.g. after warm-up steps). Running spans must be closed first. */
    public void reset() {
        for (Span span : spans.values())
            if (span.startedAt >= 0)
                throw new IllegalStateException("operator timer '" + span.name + "' is still running");
        spans.clear();
    }

    /** Sum of all operators' time, in nanoseconds. */
    public long totalNanos() {
        long total = 0;
        for (Span span : spans.values())
            total += span.nanos;
        return total;
    }

    /** Every operator's total and share, largest first. */
    public List<Entry> entries() {
        long total = totalNanos();
        List<Entry> entries = new ArrayList<>(spans.size());
        for (Span span : spans.values())
            entries.add(new Entry(span.name, span.nanos, span.calls, total == 0 ? 0 : (double) span.nanos / total));
        entries.sort(Comparator.comparingLong(Entry::nanos).reversed());
        return entries;
    }

    /** A plain-text table: operator, total ms, calls, mean µs per call, share. */
    public String table() {
        return table(entries());
    }

    /** The plain-text table of {@link #table()} for entries from any source (e.g. a saved run). */
    public static String table(List<Entry> entries) {
        int width = "operator".length();
        for (Entry e : entries)
            width = Math.max(width, e.name().length());
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "%-" + width + "s %12s %10s %12s %7s%n", "operator", "total ms", "calls", "mean us", "share"));
        for (Entry e : entries)
            out.append(String.format(Locale.ROOT, "%-" + width + "s %12.1f %10d %12.1f %6.1f%%%n", e.name(), e.nanos() / 1e6,
                    e.calls(), e.calls() == 0 ? 0.0 : e.nanos() / 1e3 / e.calls(), 100 * e.share()));
        return out.toString();
    }
}
