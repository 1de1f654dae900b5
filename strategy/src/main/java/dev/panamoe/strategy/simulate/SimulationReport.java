package dev.panamoe.strategy.simulate;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.panamoe.strategy.policy.PolicyContext;
import dev.panamoe.strategy.trace.LoadTrace;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/** The simulator's result: one {@link PolicyRun} per policy, the first being static (the baseline). */
public final class SimulationReport {
    private final PolicyContext context;
    private final LoadTrace trace;
    private final List<PolicyRun> runs;
    private final double[] balancedSeconds;

    SimulationReport(PolicyContext context, LoadTrace trace, List<PolicyRun> runs, double[] balancedSeconds) {
        this.context = context;
        this.trace = trace;
        this.runs = List.copyOf(runs);
        this.balancedSeconds = balancedSeconds.clone();
    }

    /** Each iteration's time with every device at the mean load, no migration or replica cost. */
    public double[] balancedIterationSeconds() {
        return balancedSeconds.clone();
    }

    public double meanBalancedSeconds() {
        return Arrays.stream(balancedSeconds).average().orElse(0);
    }

    public List<PolicyRun> runs() {
        return runs;
    }

    public PolicyRun run(String policy) {
        return runs.stream().filter(r -> r.policy().equals(policy)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("policy: \"" + policy + "\" was not simulated"));
    }

    public PolicyRun baseline() {
        return runs.stream().filter(r -> r.policy().equalsIgnoreCase("static")).findFirst().orElseThrow();
    }

    /** Mean static iteration time over the policy's: the throughput speedup. */
    public double speedup(PolicyRun run) {
        return baseline().meanIterationSeconds() / run.meanIterationSeconds();
    }

    /** A fixed-width table, one row per policy, then the balanced bound. */
    public String table() {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "%-12s %12s %9s %13s %8s %8s %13s %12s %11s%n", "policy",
                "mean iter ms", "speedup", "max/mean load", "changes", "moved", "migration ms", "sync ms/it",
                "decide us"));
        for (PolicyRun r : runs) {
            out.append(String.format(Locale.ROOT, "%-12s %12.3f %8.3fx %13.3f %8d %8d %13.3f %12.4f %11.1f%n",
                    r.policy(), r.meanIterationSeconds() * 1e3, speedup(r), r.maxOverMeanLoad(), r.changes(),
                    r.movedSlots(), r.migrationSeconds() * 1e3, r.syncSeconds() * 1e3 / r.iterationSeconds().length,
                    r.meanDecisionMicros()));
        }
        double balanced = meanBalancedSeconds();
        out.append(String.format(Locale.ROOT, "%-12s %12.3f %8.3fx %13.3f %8s %8s %13s %12s %11s%n", "balanced",
                balanced * 1e3, baseline().meanIterationSeconds() / balanced, 1.0, "-", "-", "-", "-", "-"));
        out.append("(balanced: every device at the mean expert load, no migration or replica cost: the bound)\n");
        return out.toString();
    }

    /**
     * {"trace": {...}, "model", "plan", "micro_batch", "micro_batches", "cluster",
     * "policies": {"&lt;policy&gt;": {"mean_iter_ms", "speedup_over_static", "max_over_mean_load",
     * "max_over_mean_load_by_layer", "changes", "moved_slots", "migration_ms", "sync_ms",
     * "decision_us_mean", "iter_ms": [...]}}, "balanced": {"mean_iter_ms", "speedup_over_static",
     * "iter_ms": [...]}}
     */
    public String toJson() {
        JsonObject root = new JsonObject();
        JsonObject t = new JsonObject();
        t.addProperty("iterations", trace.iterations());
        t.addProperty("layers", trace.layers());
        t.addProperty("ranks", trace.ranks());
        t.addProperty("micro_batches", trace.microBatches());
        t.addProperty("experts", trace.experts());
        root.add("trace", t);
        root.addProperty("model", context.model().name());
        root.addProperty("cluster", context.cost().cluster().describe());
        root.addProperty("plan", context.plan().toString());
        root.addProperty("micro_batch", context.skeleton().microBatch());
        root.addProperty("micro_batches", context.skeleton().microBatches());
        JsonObject policies = new JsonObject();
        for (PolicyRun r : runs) {
            JsonObject p = new JsonObject();
            p.addProperty("mean_iter_ms", r.meanIterationSeconds() * 1e3);
            p.addProperty("speedup_over_static", speedup(r));
            p.addProperty("max_over_mean_load", r.maxOverMeanLoad());
            p.add("max_over_mean_load_by_layer", array(r.maxOverMeanByLayer(), 1));
            p.addProperty("changes", r.changes());
            p.addProperty("moved_slots", r.movedSlots());
            p.addProperty("migration_ms", r.migrationSeconds() * 1e3);
            p.addProperty("sync_ms", r.syncSeconds() * 1e3);
            p.addProperty("decision_us_mean", r.meanDecisionMicros());
            p.add("iter_ms", array(r.iterationSeconds(), 1e3));
            policies.add(r.policy(), p);
        }
        root.add("policies", policies);
        JsonObject bound = new JsonObject();
        bound.addProperty("mean_iter_ms", meanBalancedSeconds() * 1e3);
        bound.addProperty("speedup_over_static", baseline().meanIterationSeconds() / meanBalancedSeconds());
        bound.add("iter_ms", array(balancedSeconds, 1e3));
        root.add("balanced", bound);
        return new GsonBuilder().setPrettyPrinting().create().toJson(root);
    }

    private static JsonArray array(double[] values, double scale) {
        JsonArray a = new JsonArray();
        for (double v : values) {
            a.add(v * scale);
        }
        return a;
    }
}
