package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;

/** How the router turns logits into expert scores (PMOE_SCORE_*). */
public enum ScoreFunction {
    SOFTMAX(panamoe_h.PMOE_SCORE_SOFTMAX()),
    SIGMOID(panamoe_h.PMOE_SCORE_SIGMOID());

    private final int abiCode;

    ScoreFunction(int abiCode) {
        this.abiCode = abiCode;
    }

    public int abiCode() {
        return abiCode;
    }
}
