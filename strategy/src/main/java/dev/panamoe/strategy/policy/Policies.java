package dev.panamoe.strategy.policy;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Makes policies from their strings: {@code static}, {@code greedy[:X]} (period X, default 10),
 * {@code replica[:R]} and {@code smart[:R]} (R replica slots per device, default
 * {@link #defaultReplicaSlots}: the same memory budget for both).
 */
public final class Policies {

    private Policies() {
    }

    /** One replica slot per four native experts per device, at least one. */
    public static int defaultReplicaSlots(PolicyContext context) {
        return Math.max(1, context.nativeSlots() / 4);
    }

    public static PlacementPolicy create(String spec, PolicyContext context) {
        String s = spec == null ? "" : spec.strip().toLowerCase(Locale.ROOT);
        int colon = s.indexOf(':');
        String kind = colon < 0 ? s : s.substring(0, colon);
        Integer arg = colon < 0 ? null : argument(spec, s.substring(colon + 1));
        return switch (kind) {
            case "static" -> {
                if (arg != null) {
                    throw new IllegalArgumentException("policy: \"" + spec + "\": static takes no argument");
                }
                yield new StaticPolicy(context);
            }
            case "greedy" -> new GreedyPolicy(context, arg == null ? GreedyPolicy.DEFAULT_PERIOD : arg);
            case "replica" -> new ReplicaPolicy(context, arg == null ? defaultReplicaSlots(context) : arg);
            case "smart" -> new SmartPolicy(context, arg == null ? defaultReplicaSlots(context) : arg);
            default -> throw new IllegalArgumentException("policy: unknown \"" + spec
                    + "\" (expected static, greedy[:X], replica[:R] or smart[:R])");
        };
    }

    /** A comma-separated list, e.g. "static,greedy:10,greedy:100,replica,smart". */
    public static List<PlacementPolicy> createAll(String specs, PolicyContext context) {
        List<PlacementPolicy> out = new ArrayList<>();
        for (String spec : specs.split(",")) {
            out.add(create(spec, context));
        }
        return out;
    }

    private static int argument(String spec, String value) {
        try {
            int v = Integer.parseInt(value.strip());
            if (v >= 1) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("policy: \"" + spec + "\": the argument must be an integer >= 1, got \""
                + value + "\"");
    }
}
