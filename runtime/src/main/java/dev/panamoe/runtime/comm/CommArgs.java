package dev.panamoe.runtime.comm;

import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import java.util.Arrays;

/**
 * Checks of one rank's own arguments to a collective, shared by every backend so that bad input
 * fails the same way everywhere: an IllegalArgumentException naming the argument and the value.
 */
final class CommArgs {
    private CommArgs() {}

    /** A tensor every backend can exchange: F32, I32 or BF16 (and on the CPU where the backend needs host memory). */
    static void checkTensor(String arg, Tensor t, boolean needsCpu) {
        if (t == null) {
            throw new IllegalArgumentException(arg + ": must not be null");
        }
        if (t.dtype() != DType.F32 && t.dtype() != DType.I32 && t.dtype() != DType.BF16) {
            throw new IllegalArgumentException(arg + ": dtype must be f32, i32 or bf16, got " + t.describe());
        }
        if (needsCpu && !t.device().isCpu()) {
            throw new IllegalArgumentException(arg + ": this backend needs a CPU tensor, got " + t.describe());
        }
    }

    /**
     * A tensor a sum may take (after {@link #checkTensor}): bf16 is moved, never summed — mixed
     * precision sums gradients in f32, and a bf16 sum would round each partial sum.
     */
    static void checkSummable(String arg, Tensor t) {
        if (t.dtype() == DType.BF16) {
            throw new IllegalArgumentException(arg + ": bf16 tensors are exchanged but not summed (sum them in f32), got "
                    + t.describe());
        }
    }

    static void checkSameDtype(String arg, Tensor t, Tensor reference) {
        if (t.dtype() != reference.dtype()) {
            throw new IllegalArgumentException(arg + ": dtype must match " + reference.describe() + ", got " + t.describe());
        }
    }

    /** out holds size blocks of in's element count (all-gather), or in holds size blocks of out's (reduce-scatter). */
    static void checkBlocks(String arg, Tensor whole, Tensor block, int size) {
        if (whole.numel() != block.numel() * size) {
            throw new IllegalArgumentException(arg + ": expected " + size + " x " + block.numel() + " = "
                    + block.numel() * size + " elements (" + size + " ranks), got " + whole.describe());
        }
    }

    static void checkRank(String arg, int rank, int size) {
        if (rank < 0 || rank >= size) {
            throw new IllegalArgumentException(arg + ": " + rank + " is out of range for a group of " + size + " ranks");
        }
    }

    /** One non-negative count per rank, summing to at most t's element count; returns the sum. */
    static long checkCounts(String arg, int[] counts, int size, Tensor t) {
        if (counts == null || counts.length != size) {
            throw new IllegalArgumentException(arg + ": expected " + size + " counts (one per rank), got "
                    + (counts == null ? "null" : counts.length + " " + Arrays.toString(counts)));
        }
        long sum = 0;
        for (int p = 0; p < size; p++) {
            if (counts[p] < 0) {
                throw new IllegalArgumentException(arg + "[" + p + "]: count must be >= 0, got " + counts[p]);
            }
            sum += counts[p];
        }
        if (sum > t.numel()) {
            throw new IllegalArgumentException(arg + ": counts sum to " + sum + " elements, more than " + t.describe() + " holds");
        }
        return sum;
    }

    /** Element offsets of the blocks: offsets[p] = counts[0] + ... + counts[p-1]. */
    static long[] offsets(int[] counts) {
        long[] offsets = new long[counts.length];
        for (int p = 1; p < counts.length; p++) {
            offsets[p] = offsets[p - 1] + counts[p - 1];
        }
        return offsets;
    }
}
