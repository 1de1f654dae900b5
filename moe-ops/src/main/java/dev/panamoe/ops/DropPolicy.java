package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;

/** Which (token, k) slots an expert keeps when more than its capacity are routed to it (PMOE_DROP_*). */
public enum DropPolicy {
    /** Keep the first `capacity` slots in (token, k) order. */
    BY_POSITION(panamoe_h.PMOE_DROP_BY_POSITION()),
    /** Keep the `capacity` slots with the largest routing weights. */
    BY_PROBABILITY(panamoe_h.PMOE_DROP_BY_PROBABILITY());

    private final int abiCode;

    DropPolicy(int abiCode) {
        this.abiCode = abiCode;
    }

    public int abiCode() {
        return abiCode;
    }
}
