package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/** The identity placement (expert e on device e / (experts / ep)) forever: the baseline. */
public final class StaticPolicy implements PlacementPolicy {
    private final List<ExpertPlacement> placements;

    public StaticPolicy(PolicyContext context) {
        placements = Collections.nCopies(context.moeLayers(),
                ExpertPlacement.identity(context.experts(), context.devices(), 0));
    }

    @Override
    public String name() {
        return "static";
    }

    @Override
    public List<ExpertPlacement> initial() {
        return placements;
    }

    @Override
    public Optional<List<ExpertPlacement>> decide(long iteration, LoadTracker tracker) {
        return Optional.empty();
    }

    @Override
    public ReplicaSync replicaSync() {
        return ReplicaSync.ALL_REDUCE;
    }
}
