package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;
import static dev.panamoe.ops.Checks.floatTensor;
import static dev.panamoe.ops.Checks.require;
import static dev.panamoe.ops.Checks.shape;
import static dev.panamoe.ops.Checks.tensor;

import java.util.Arrays;

/**
 * Shape, dtype and device checks of each kernel's tensor arguments, shared by the backends:
 * after a check passes, every size the kernel receives is consistent with the tensors' memory.
 * (Checks of the values inside index tensors read them on the host and live in NativeBackend.)
 */
final class KernelArgs {
    private KernelArgs() {
    }

    record GemmSizes(int m, int n, int k) {
    }

    /** a and b both f32 (then c f32) or both bf16 (then c f32 or bf16). */
    static GemmSizes gemm(Device d, boolean transA, boolean transB, Tensor a, Tensor b, Tensor c) {
        floatTensor("a", a, d, ANY, ANY);
        tensor("b", b, d, a.dtype(), ANY, ANY);
        if (a.dtype() == DType.F32) {
            tensor("c", c, d, DType.F32, ANY, ANY);
        } else {
            floatTensor("c", c, d, ANY, ANY);
        }
        int m = c.dim(0);
        int n = c.dim(1);
        int k = transA ? a.dim(0) : a.dim(1);
        shape("a", a, transA ? new int[] {k, m} : new int[] {m, k});
        shape("b", b, transB ? new int[] {n, k} : new int[] {k, n});
        return new GemmSizes(m, n, k);
    }

    /** Checks offsets [G + 1] i32 against a table of G entries of dtype, each of entryShape; returns G. */
    static int groups(Device d, Tensor offsets, String tableArg, TensorTable table, DType dtype, int... entryShape) {
        Checks.notNull(tableArg, table);
        int g = table.size();
        tensor("offsets", offsets, d, DType.I32, g + 1);
        require(table.device().equals(d), tableArg + ": expected a table on " + d + ", got one on " + table.device());
        require(table.dtype() == dtype, tableArg + ": expected dtype " + dtype + ", got " + table.dtype());
        require(Arrays.equals(table.entryShape(), entryShape), tableArg + ": expected entries of shape "
                + Arrays.toString(entryShape) + ", got " + Arrays.toString(table.entryShape()));
        return g;
    }

    /** nn (weights [k, n]) or nt (weights [n, k]): a [R, k], c [R, n]; a, weights and c all f32 or all bf16. */
    static void groupedGemm(Device d, Tensor offsets, Tensor a, TensorTable weights, boolean transWeights, Tensor c) {
        floatTensor("a", a, d, ANY, ANY);
        tensor("c", c, d, a.dtype(), a.dim(0), ANY);
        int k = a.dim(1);
        int n = c.dim(1);
        groups(d, offsets, "weights", weights, a.dtype(), transWeights ? new int[] {n, k} : new int[] {k, n});
    }

    /** a [R, k] and b [R, n] both f32 (then out f32) or both bf16 (then out f32 or bf16). */
    static void groupedGemmTn(Device d, Tensor offsets, Tensor a, Tensor b, TensorTable out) {
        floatTensor("a", a, d, ANY, ANY);
        tensor("b", b, d, a.dtype(), a.dim(0), ANY);
        Checks.notNull("out", out);
        DType outType = a.dtype() == DType.BF16 && out.dtype() == DType.BF16 ? DType.BF16 : DType.F32;
        groups(d, offsets, "out", out, outType, a.dim(1), b.dim(1));
    }

    /** logits-like [T, E] f32 and topkIds [T, K] i32 with 1 <= K <= E; returns K. */
    static int routing(Device d, String scoresArg, Tensor scores, Tensor topkIds) {
        tensor(scoresArg, scores, d, DType.F32, ANY, ANY);
        tensor("topkIds", topkIds, d, DType.I32, scores.dim(0), ANY);
        int k = topkIds.dim(1);
        require(k >= 1 && k <= scores.dim(1), "topK: must be in [1, " + scores.dim(1) + "] (experts), got " + k);
        return k;
    }

    static void routerForward(Device d, Tensor logits, Tensor scores, Tensor topkWeights, Tensor topkIds) {
        routing(d, "logits", logits, topkIds);
        tensor("scores", scores, d, DType.F32, logits.shape());
        tensor("topkWeights", topkWeights, d, DType.F32, topkIds.shape());
    }

    static void routerBackward(Device d, Tensor scores, Tensor topkIds, Tensor gradTopkWeights, Tensor gradScores,
            Tensor gradLogits) {
        routing(d, "scores", scores, topkIds);
        tensor("gradTopkWeights", gradTopkWeights, d, DType.F32, topkIds.shape());
        if (gradScores != null) {
            tensor("gradScores", gradScores, d, DType.F32, scores.shape());
        }
        tensor("gradLogits", gradLogits, d, DType.F32, scores.shape());
    }

    static void auxLossForward(Device d, Tensor scores, Tensor topkIds, Tensor loss, Tensor expertCounts) {
        routing(d, "scores", scores, topkIds);
        tensor("loss", loss, d, DType.F32, 1);
        tensor("expertCounts", expertCounts, d, DType.I32, scores.dim(1));
    }

    static void auxLossBackward(Device d, int topK, Tensor expertCounts, Tensor gradScores) {
        tensor("gradScores", gradScores, d, DType.F32, ANY, ANY);
        tensor("expertCounts", expertCounts, d, DType.I32, gradScores.dim(1));
        require(topK >= 1 && topK <= gradScores.dim(1), "topK: must be in [1, " + gradScores.dim(1) + "] (experts), got " + topK);
    }

    static void zLossForward(Device d, Tensor logits, Tensor loss) {
        tensor("logits", logits, d, DType.F32, ANY, ANY);
        tensor("loss", loss, d, DType.F32, 1);
    }

    static void zLossBackward(Device d, Tensor logits, Tensor gradLogits) {
        tensor("logits", logits, d, DType.F32, ANY, ANY);
        tensor("gradLogits", gradLogits, d, DType.F32, logits.shape());
    }

    /** Returns P, the number of physical experts. */
    static int dispatchPlan(Device d, Tensor topkIds, Tensor topkWeights, Tensor remap, int logicalExperts, int capacity,
            DropPolicy dropPolicy, Tensor expertCounts, Tensor expertOffsets, Tensor slotPosition, Tensor sortedSlot) {
        tensor("topkIds", topkIds, d, DType.I32, ANY, ANY);
        int tokens = topkIds.dim(0);
        int k = topkIds.dim(1);
        require(k >= 1 && k <= logicalExperts, "topK: must be in [1, " + logicalExperts + "] (logical experts), got " + k);
        tensor("topkWeights", topkWeights, d, DType.F32, tokens, k);
        tensor("expertCounts", expertCounts, d, DType.I32, ANY);
        int p = expertCounts.dim(0);
        require(p >= 1, "expertCounts: expected at least one physical expert, got shape [0]");
        tensor("expertOffsets", expertOffsets, d, DType.I32, p + 1);
        tensor("slotPosition", slotPosition, d, DType.I32, tokens, k);
        tensor("sortedSlot", sortedSlot, d, DType.I32, tokens * k);
        if (remap == null) {
            require(logicalExperts == p, "logicalExperts: without a remap table it must equal the "
                    + p + " physical experts, got " + logicalExperts);
        } else {
            tensor("remap", remap, d, DType.I32, logicalExperts);
        }
        require(capacity == Backend.CAPACITY_DROPLESS || capacity >= 0,
                "capacity: must be >= 0 or CAPACITY_DROPLESS (-1), got " + capacity);
        Checks.notNull("dropPolicy", dropPolicy);
        return p;
    }

    static void permute(Device d, Tensor x, Tensor sortedSlot, int topK, Tensor out) {
        floatTensor("x", x, d, ANY, ANY);
        require(topK >= 1, "topK: must be >= 1, got " + topK);
        tensor("sortedSlot", sortedSlot, d, DType.I32, x.dim(0) * topK);
        floatTensor("out", out, d, ANY, x.dim(1));
        Checks.sameDtype("out", out, x);
        require(out.dim(0) <= x.dim(0) * topK, "out: has " + out.dim(0) + " rows, more than the "
                + x.dim(0) * topK + " (tokens * topK) slots");
    }

    /** rowsArg [R, H] f32/bf16 and tokensArg [T, H] of the same dtype, slotPosition [T, K]. */
    static void rowsAndTokens(Device d, String rowsArg, Tensor rows, String tokensArg, Tensor tokens, Tensor slotPosition) {
        floatTensor(tokensArg, tokens, d, ANY, ANY);
        floatTensor(rowsArg, rows, d, ANY, tokens.dim(1));
        Checks.sameDtype(rowsArg, rows, tokens);
        tensor("slotPosition", slotPosition, d, DType.I32, tokens.dim(0), ANY);
        require(slotPosition.dim(1) >= 1, "slotPosition: expected shape [" + tokens.dim(0) + ", K >= 1], got "
                + Arrays.toString(slotPosition.shape()));
    }

    static void combine(Device d, Tensor expertOut, Tensor topkWeights, Tensor slotPosition, Tensor y) {
        rowsAndTokens(d, "expertOut", expertOut, "y", y, slotPosition);
        tensor("topkWeights", topkWeights, d, DType.F32, slotPosition.shape());
    }

    static void combineBackward(Device d, Tensor gradY, Tensor expertOut, Tensor topkWeights, Tensor slotPosition,
            Tensor gradExpertOut, Tensor gradWeights) {
        rowsAndTokens(d, "expertOut", expertOut, "gradY", gradY, slotPosition);
        tensor("topkWeights", topkWeights, d, DType.F32, slotPosition.shape());
        floatTensor("gradExpertOut", gradExpertOut, d, expertOut.shape());
        Checks.sameDtype("gradExpertOut", gradExpertOut, expertOut);
        tensor("gradWeights", gradWeights, d, DType.F32, slotPosition.shape());
    }

    /** in [R, C'] and out-like [R, C] of in's dtype (f32 or bf16) with C' = act.inputWidth(C). */
    static void activation(Device d, Activation act, Tensor in, String outArg, Tensor out) {
        Checks.notNull("act", act);
        floatTensor(outArg, out, d, ANY, ANY);
        tensor("in", in, d, out.dtype(), out.dim(0), act.inputWidth(out.dim(1)));
    }

    /** src and dst f32 or bf16 with the same element count; returns it. */
    static long convert(Device d, Tensor src, Tensor dst) {
        floatTensor("src", src, d, Checks.anyShape(src));
        floatTensor("dst", dst, d, Checks.anyShape(dst));
        require(dst.numel() == src.numel(), "dst: expected " + src.numel() + " elements like src, got shape "
                + Arrays.toString(dst.shape()));
        require(src.numel() == 0 || dst.data().asOverlappingSlice(src.data()).isEmpty(),
                "dst: must not overlap src");
        return src.numel();
    }
}
