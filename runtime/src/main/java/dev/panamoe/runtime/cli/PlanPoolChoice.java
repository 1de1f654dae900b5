package dev.panamoe.runtime.cli;

import dev.panamoe.strategy.search.PlanPool;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/**
 * {@code train --plan-pool FILE}: the fastest entry of a pool written by {@code plan --json}
 * that fits the run — the pool's model is the run's preset, the entry's plan covers exactly the
 * run's ranks, and the trainer accepts it with the run's batch — and why each faster entry did not.
 *
 * @param entry   the chosen entry
 * @param number  its 1-based position in the pool (as {@code plan} prints it)
 * @param skipped "#n plan: reason" for each faster entry that does not fit
 */
record PlanPoolChoice(PlanPool.Entry entry, int number, List<String> skipped) {

    /**
     * misfit says why the trainer refuses an entry (null when it accepts it). Throws
     * IllegalArgumentException listing every entry and its reason when none fits.
     */
    static PlanPoolChoice choose(Path file, PlanPool pool, String preset, int ranks,
            Function<PlanPool.Entry, String> misfit) {
        List<String> reasons = new ArrayList<>();
        for (int i = 0; i < pool.pool().size(); i++) {
            PlanPool.Entry e = pool.pool().get(i);
            String why = reason(pool, e, preset, ranks, misfit);
            if (why == null) {
                return new PlanPoolChoice(e, i + 1, List.copyOf(reasons));
            }
            reasons.add("#" + (i + 1) + " " + e.plan() + ": " + why);
        }
        throw new IllegalArgumentException("--plan-pool " + file + ": no entry fits a run of " + ranks
                + " ranks of model " + preset + (reasons.isEmpty() ? " (the pool is empty)" : ":\n  "
                + String.join("\n  ", reasons)));
    }

    private static String reason(PlanPool pool, PlanPool.Entry e, String preset, int ranks,
            Function<PlanPool.Entry, String> misfit) {
        if (!preset.equals(pool.model())) {
            return "the pool was searched for model " + pool.model() + ", this run trains " + preset;
        }
        int world = e.parallelPlan().world();
        if (world != ranks) {
            return "needs " + world + " ranks, the run has " + ranks;
        }
        return misfit.apply(e);
    }

    /** What train prints: the choice, its predicted step, and the faster entries it passed over. */
    String describe(Path file, PlanPool pool) {
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT,
                "plan pool %s: using #%d %s, micro-batches %d, capacity %s (predicted %.2f ms per step on %s)",
                file, number, entry.plan(), entry.microBatches(), entry.capacity(), entry.stepSeconds() * 1e3,
                pool.cluster()));
        s.append(skipped.isEmpty() ? "\n  the fastest entry of the pool, and it fits this run"
                : "\n  the fastest entry that fits this run; faster ones do not:");
        for (String line : skipped) {
            s.append("\n    ").append(line);
        }
        return s.toString();
    }
}
