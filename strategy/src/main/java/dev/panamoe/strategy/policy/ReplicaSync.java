package dev.panamoe.strategy.policy;

/** How an expert's copies stay identical, which decides what replicas cost per step and to create. */
public enum ReplicaSync {
    /**
     * Megatron-Core's replica planner: the owner keeps the only optimizer state; every step each
     * replica slot receives its expert's weights before the expert GEMMs and sends its gradient
     * back to the owner after the backward. Creating or reassigning a replica is free (the copy
     * happens every step anyway).
     */
    COPY_EACH_STEP,
    /**
     * Ours: a replica is created with the expert's parameters and optimizer state (a migration);
     * afterwards the copies all-reduce their gradients every step and apply the same optimizer
     * update, so they stay identical with no weight copy. A permanent move is a migration too.
     */
    ALL_REDUCE
}
