package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;

/**
 * Expert FFN activation (PMOE_ACT_*). GeLU (tanh approximation) and SiLU map [rows, ffn] to
 * [rows, ffn]; SwiGLU maps [rows, 2 * ffn] = [gate | up] to silu(gate) * up, so its first
 * projection is twice as wide.
 */
public enum Activation {
    GELU(panamoe_h.PMOE_ACT_GELU()),
    SILU(panamoe_h.PMOE_ACT_SILU()),
    SWIGLU(panamoe_h.PMOE_ACT_SWIGLU());

    private final int abiCode;

    Activation(int abiCode) {
        this.abiCode = abiCode;
    }

    public int abiCode() {
        return abiCode;
    }

    /** Width of the activation's input (the first projection's output) for an FFN of size ffn. */
    public int inputWidth(int ffn) {
        return this == SWIGLU ? 2 * ffn : ffn;
    }
}
