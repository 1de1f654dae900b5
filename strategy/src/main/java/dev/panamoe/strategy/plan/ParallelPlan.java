package dev.panamoe.strategy.plan;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * How a world of ranks trains one model: pp pipeline stages, each stage's ranks a
 * tp x ep x edp grid. world = pp * tp * ep * edp.
 * <ul>
 *   <li>Dense layers: tensor parallel over tp (attention split by heads, FFN column- then
 *       row-parallel), data parallel over the ep * edp ranks that share a stage and a tp index —
 *       expert parallelism is carved out of data parallelism, as in Megatron-Core and SmartMoE,
 *       so each of those ranks trains on its own share of the batch.</li>
 *   <li>MoE layers: experts sharded over ep (each rank holds experts / ep of them), replicated
 *       over edp, and tensor-parallel over tp like the dense FFN (expert tensor parallelism =
 *       tp).</li>
 * </ul>
 * In the plan syntax {@code dp} is a synonym of {@code edp}: with ep = 1 it is the ordinary
 * data-parallel degree. See {@link RankLayout} for which ranks form each group.
 */
public record ParallelPlan(int pp, int tp, int ep, int edp) {

    public static final ParallelPlan SINGLE = new ParallelPlan(1, 1, 1, 1);

    public ParallelPlan {
        positive("pp", pp);
        positive("tp", tp);
        positive("ep", ep);
        positive("edp", edp);
    }

    public int world() {
        return pp * tp * ep * edp;
    }

    /** Ranks of a stage that hold different data for the dense layers: ep * edp. */
    public int dataParallel() {
        return ep * edp;
    }

    /** Ranks of one pipeline stage: tp * ep * edp. */
    public int stageSize() {
        return tp * ep * edp;
    }

    /**
     * Parses "pp=2,dp=2,ep=2" (also "pp2*dp2*ep2"; keys pp, tp, ep, edp and its synonym dp).
     * edp, when not given, is what makes the product equal world; a plan whose product is not
     * world is rejected with the product and the world in the message.
     */
    public static ParallelPlan parse(String spec, int world) {
        if (world < 1) {
            throw new IllegalArgumentException("world: must be >= 1, got " + world);
        }
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("plan: must not be empty (e.g. \"pp=2,dp=2,ep=2\")");
        }
        Map<String, Integer> degrees = new LinkedHashMap<>();
        for (String part : spec.toLowerCase(Locale.ROOT).split("[,*]")) {
            String p = part.strip();
            int split = p.indexOf('=') >= 0 ? p.indexOf('=') : firstDigit(p);
            if (split <= 0 || split >= p.length()) {
                throw new IllegalArgumentException("plan: \"" + part + "\" in \"" + spec + "\" is not key=degree");
            }
            String key = p.substring(0, split).strip();
            String value = p.substring(p.charAt(split) == '=' ? split + 1 : split).strip();
            if (key.equals("dp")) {
                key = "edp";
            }
            if (!key.equals("pp") && !key.equals("tp") && !key.equals("ep") && !key.equals("edp")) {
                throw new IllegalArgumentException("plan: unknown key \"" + key + "\" in \"" + spec
                        + "\" (expected pp, tp, ep, dp or edp)");
            }
            int degree;
            try {
                degree = Integer.parseInt(value);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("plan: degree \"" + value + "\" of " + key + " in \"" + spec
                        + "\" is not an integer");
            }
            positive(key, degree);
            Integer previous = degrees.put(key, degree);
            if (previous != null && previous != degree) {
                throw new IllegalArgumentException("plan: " + key + " is given twice (" + previous + " and " + degree
                        + ") in \"" + spec + "\" (dp and edp are the same degree)");
            }
        }
        int pp = degrees.getOrDefault("pp", 1);
        int tp = degrees.getOrDefault("tp", 1);
        int ep = degrees.getOrDefault("ep", 1);
        int given = pp * tp * ep;
        Integer edp = degrees.get("edp");
        if (edp == null) {
            if (world % given != 0) {
                throw new IllegalArgumentException("plan: pp * tp * ep = " + given + " does not divide world "
                        + world + " (\"" + spec + "\")");
            }
            edp = world / given;
        }
        ParallelPlan plan = new ParallelPlan(pp, tp, ep, edp);
        if (plan.world() != world) {
            throw new IllegalArgumentException("plan: pp * tp * ep * dp = " + plan.world() + " but world is " + world
                    + " (\"" + spec + "\")");
        }
        return plan;
    }

    /**
     * Throws IllegalArgumentException naming the first constraint this plan breaks for the
     * model: layers divisible by pp, experts by ep, heads, hidden and both FFN widths by tp.
     */
    public void validate(ModelShape model) {
        divides("pp", pp, "layers", model.layers());
        divides("ep", ep, "experts", model.experts());
        divides("tp", tp, "heads", model.heads());
        divides("tp", tp, "hidden", model.hidden());
        divides("tp", tp, "expertFfn", model.expertFfn());
        divides("tp", tp, "denseFfn", model.denseFfn());
        if (model.moeEvery() > 1) {
            // every stage must hold whole (dense, ..., MoE) periods so stages are alike
            divides("pp", pp, "layers / moeEvery", model.layers() / model.moeEvery());
        }
    }

    @Override
    public String toString() {
        return "pp=" + pp + ",tp=" + tp + ",ep=" + ep + ",edp=" + edp;
    }

    private static void divides(String degreeName, int degree, String what, int value) {
        if (value % degree != 0) {
            throw new IllegalArgumentException("plan: " + degreeName + "=" + degree + " does not divide " + what
                    + " = " + value);
        }
    }

    private static int firstDigit(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (Character.isDigit(s.charAt(i))) {
                return i;
            }
        }
        return -1;
    }

    private static void positive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException("plan: " + name + " must be >= 1, got " + v);
        }
    }
}
