package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.List;
import java.util.Optional;

/**
 * Decides where each MoE layer's experts live while training. The trainer (or the simulator)
 * calls it like this:
 * <pre>
 *   List&lt;ExpertPlacement&gt; placements = policy.initial();
 *   for each iteration i:
 *       (a policy that decidesWithinStep(): route, tracker.record(layer, counts) for every layer, then decide)
 *       policy.decide(i, tracker).ifPresent(p -&gt; apply p: migrate / copy, update the dispatch tables)
 *       run the step; tracker.record(layer, counts) for every layer
 * </pre>
 * A policy keeps its own copy of the placements it returned (it assumes they were applied).
 * Every placement it returns has the shape of {@link #initial()} (the same slots per device —
 * its memory budget) and holds every expert.
 */
public interface PlacementPolicy {

    /** The policy string it was made from, e.g. "greedy:10". */
    String name();

    /** The placement of each MoE layer before the first iteration. */
    List<ExpertPlacement> initial();

    /**
     * Called before iteration runs: empty to keep the current placements, else the new
     * placement of every MoE layer (layers it does not change are returned as they are).
     */
    Optional<List<ExpertPlacement>> decide(long iteration, LoadTracker tracker);

    /** How this policy keeps replicas identical, which decides what they cost. */
    ReplicaSync replicaSync();

    /**
     * True when decide(i) reads iteration i's own counts: the trainer records them after the
     * router of step i and before the dispatch (Megatron-Core's replica planner works this way).
     */
    default boolean decidesWithinStep() {
        return false;
    }
}
