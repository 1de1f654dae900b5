package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;

/** Element type of a tensor. F32 and BF16 are the ABI's float types; I32 holds ids, counts and offsets. */
public enum DType {
    F32(4, panamoe_h.PMOE_DTYPE_F32()),
    BF16(2, panamoe_h.PMOE_DTYPE_BF16()),
    I32(4, -1);

    private final int byteSize;
    private final int abiCode;

    DType(int byteSize, int abiCode) {
        this.byteSize = byteSize;
        this.abiCode = abiCode;
    }

    public int byteSize() {
        return byteSize;
    }

    /** The PMOE_DTYPE_* value of a float type (the kernels that take a dtype argument). */
    public int abiCode() {
        if (abiCode < 0) {
            throw new IllegalArgumentException("dtype: " + this + " has no PMOE_DTYPE_* code");
        }
        return abiCode;
    }

    @Override
    public String toString() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
