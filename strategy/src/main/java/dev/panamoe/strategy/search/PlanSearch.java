package dev.panamoe.strategy.search;

import dev.panamoe.strategy.cost.Calibration;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.ExpertLoad;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.cost.StepEstimate;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.search.PlanPool.Entry;
import dev.panamoe.strategy.search.PlanPool.Reason;
import dev.panamoe.strategy.search.PlanPool.Rejection;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * SmartMoE's offline phase: enumerates every parallel plan (pp, tp, ep, edp) of the cluster's
 * devices, every micro-batch that divides a data-parallel rank's share of the global batch and
 * every allowed capacity factor; drops the infeasible ones (divisibility, tp wider than a node,
 * batch, memory), scores the rest with the {@link CostModel} under each load sample (the mean
 * step time ranks them), keeps the best micro-batch of each (plan, capacity) and pools the
 * fastest. Every plan that is not pooled is listed with why.
 *
 * <p>The capacity factor's effect on quality (dropped tokens) is not priced: a smaller factor
 * is always at least as fast, so offer only the factors the model may train with.
 */
public final class PlanSearch {

    /**
     * What to search.
     *
     * @param globalBatch     sequences per step
     * @param capacityFactors allowed factors (Skeleton.DROPLESS for none)
     * @param poolSize        skeletons to keep
     * @param loads           load samples, each priced; at least one
     * @param loadsName       how the samples were made, for the output
     */
    public record Spec(int globalBatch, List<Double> capacityFactors, int poolSize, List<ExpertLoad> loads,
            String loadsName) {
        public Spec {
            if (globalBatch < 1) {
                throw new IllegalArgumentException("globalBatch: must be >= 1, got " + globalBatch);
            }
            if (capacityFactors == null || capacityFactors.isEmpty()) {
                throw new IllegalArgumentException("capacityFactors: must hold at least one factor");
            }
            if (poolSize < 1) {
                throw new IllegalArgumentException("poolSize: must be >= 1, got " + poolSize);
            }
            if (loads == null || loads.isEmpty()) {
                throw new IllegalArgumentException("loads: must hold at least one load sample");
            }
            capacityFactors = List.copyOf(capacityFactors);
            loads = List.copyOf(loads);
        }
    }

    private PlanSearch() {
    }

    /** Runs the search for cost's model and cluster. */
    public static PlanPool search(CostModel cost, Calibration calibration, Spec spec) {
        ModelShape model = cost.model();
        List<Rejection> rejected = new ArrayList<>();
        List<Scored> feasible = new ArrayList<>();
        int considered = 0;
        CostModel.Memo memo = new CostModel.Memo();
        // plans are independent (the memo is shared and deterministic): price them on every core,
        // then collect in plan order so the result does not depend on the thread count
        List<PlanResult> results = allPlans(cost.cluster().gpus()).stream()
                .map(plan -> evaluate(cost, plan, spec, memo)).toList();
        for (PlanResult r : results) {
            considered += r.considered();
            rejected.addAll(r.rejected());
            feasible.addAll(r.feasible());
        }
        feasible.sort(Comparator.comparingDouble((Scored s) -> s.mean).thenComparing(s -> s.skeleton.toString()));
        double best = feasible.isEmpty() ? Double.NaN : feasible.getFirst().mean;
        Map<String, Scored> bestOfPlan = new LinkedHashMap<>();
        List<Entry> pool = new ArrayList<>();
        for (Scored s : feasible) {
            String key = s.skeleton.plan() + " cf=" + s.skeleton.capacityName();
            Scored better = bestOfPlan.putIfAbsent(key, s);
            double slower = 100 * (s.mean / best - 1);
            if (better != null) {
                rejected.add(new Rejection(s.skeleton.toString(), Reason.MICRO_BATCH, "micro-batch "
                        + better.skeleton.microBatch() + " is " + percent(s.mean / better.mean - 1) + " faster",
                        slower));
            } else if (pool.size() < spec.poolSize()) {
                pool.add(s.entry());
            } else {
                // sorted: the pool is full by now
                rejected.add(new Rejection(s.skeleton.toString(), Reason.SLOWER, percent(slower / 100)
                        + " slower than the best, " + percent(s.mean / pool.getLast().stepSeconds() - 1)
                        + " slower than the pool's last (" + pool.getLast().plan() + ")", slower));
            }
        }
        return new PlanPool(model.name(), cost.cluster().describe(), calibration.describe(cost.cluster()),
                spec.globalBatch(), spec.loadsName(), considered, pool, rejected);
    }

    private static final double GIB = 1024.0 * 1024 * 1024;

    private record PlanResult(int considered, List<Rejection> rejected, List<Scored> feasible) {
    }

    /** Every skeleton of one plan: rejected with its reason, or scored. */
    private static PlanResult evaluate(CostModel cost, ParallelPlan plan, Spec spec, CostModel.Memo memo) {
        ModelShape model = cost.model();
        String why = structuralReason(plan, model, cost, spec.globalBatch());
        if (why != null) {
            Reason reason = Reason.valueOf(why.substring(0, why.indexOf(':')));
            return new PlanResult(1, List.of(new Rejection(plan.toString(), reason,
                    why.substring(why.indexOf(':') + 1).strip(), null)), List.of());
        }
        List<Rejection> rejected = new ArrayList<>();
        List<Scored> feasible = new ArrayList<>();
        int considered = 0;
        int perRank = spec.globalBatch() / plan.dataParallel();
        for (int microBatch : divisors(perRank)) {
            for (double cf : spec.capacityFactors()) {
                considered++;
                Skeleton s = new Skeleton(plan, microBatch, perRank / microBatch, cf);
                // perfectly balanced experts bound the memory from below: skip pricing what cannot fit
                StepEstimate.Memory atLeast = cost.memory(s, model.experts() / plan.ep(),
                        (double) microBatch * model.seq() * model.topK());
                if (!atLeast.feasible()) {
                    rejected.add(memoryRejection(s, atLeast, "at least "));
                    continue;
                }
                Scored scored = score(cost, s, spec.loads(), memo);
                if (!scored.memory.feasible()) {
                    rejected.add(memoryRejection(s, scored.memory, ""));
                } else {
                    feasible.add(scored);
                }
            }
        }
        return new PlanResult(considered, rejected, feasible);
    }

    private static Rejection memoryRejection(Skeleton s, StepEstimate.Memory memory, String bound) {
        return new Rejection(s.toString(), Reason.MEMORY, String.format(Locale.ROOT,
                "needs %s%.1f GiB per device, %.1f GiB available", bound, memory.total() / GIB,
                memory.capacity() / GIB), null);
    }

    /** "DIVISIBILITY: ...", "TOPOLOGY: ..." or "BATCH: ...", or null when the plan can run. */
    private static String structuralReason(ParallelPlan plan, ModelShape model, CostModel cost, int globalBatch) {
        try {
            plan.validate(model);
        } catch (IllegalArgumentException e) {
            return "DIVISIBILITY: " + e.getMessage();
        }
        if (plan.tp() > cost.cluster().gpusPerNode()) {
            return "TOPOLOGY: tp=" + plan.tp() + " is wider than a node (" + cost.cluster().gpusPerNode()
                    + " devices): its all-reduces would cross nodes every layer";
        }
        if (globalBatch % plan.dataParallel() != 0) {
            return "BATCH: data-parallel degree ep*edp=" + plan.dataParallel() + " does not divide the global batch "
                    + globalBatch;
        }
        return null;
    }

    /** Every (pp, tp, ep, edp) whose product is world, pp outermost. */
    public static List<ParallelPlan> allPlans(int world) {
        List<ParallelPlan> plans = new ArrayList<>();
        for (int pp : divisors(world)) {
            for (int tp : divisors(world / pp)) {
                for (int ep : divisors(world / pp / tp)) {
                    plans.add(new ParallelPlan(pp, tp, ep, world / pp / tp / ep));
                }
            }
        }
        return plans;
    }

    static List<Integer> divisors(int n) {
        List<Integer> d = new ArrayList<>();
        for (int i = 1; i <= n; i++) {
            if (n % i == 0) {
                d.add(i);
            }
        }
        return d;
    }

    private static String percent(double fraction) {
        return String.format(Locale.ROOT, "%.1f%%", 100 * fraction);
    }

    private static Scored score(CostModel cost, Skeleton skeleton, List<ExpertLoad> loads, CostModel.Memo memo) {
        double sum = 0;
        double worst = 0;
        double loadRatio = 0;
        double dropped = 0;
        Map<String, Double> terms = new LinkedHashMap<>();
        StepEstimate.Memory memory = null;
        for (ExpertLoad load : loads) {
            StepEstimate e = cost.step(skeleton, null, load, memo);
            sum += e.seconds();
            worst = Math.max(worst, e.seconds());
            loadRatio += e.maxOverMeanLoad();
            dropped += e.droppedFraction();
            e.terms().forEach((k, v) -> terms.merge(k, v / loads.size(), Double::sum));
            if (memory == null || e.memory().total() > memory.total()) {
                memory = e.memory();
            }
        }
        int n = loads.size();
        return new Scored(skeleton, sum / n, worst, terms, memory, loadRatio / n, dropped / n);
    }

    private record Scored(Skeleton skeleton, double mean, double worst, Map<String, Double> terms,
            StepEstimate.Memory memory, double loadRatio, double dropped) {
        Entry entry() {
            ParallelPlan p = skeleton.plan();
            Map<String, Double> mem = new LinkedHashMap<>();
            mem.put("parameters", memory.parameters());
            mem.put("gradients", memory.gradients());
            mem.put("optimizer", memory.optimizer());
            mem.put("activations", memory.activations());
            return new Entry(p.toString(), p.pp(), p.tp(), p.ep(), p.edp(), skeleton.microBatch(),
                    skeleton.microBatches(), skeleton.capacityName(), mean, worst, terms, memory.total(), mem,
                    loadRatio, dropped);
        }
    }
}
