package dev.panamoe.ops;

import static dev.panamoe.ops.Checks.ANY;
import static dev.panamoe.ops.Checks.require;
import static dev.panamoe.ops.Checks.tensor;

import java.util.Arrays;

/**
 * Shape, dtype and device checks of the dense transformer operators' tensor arguments, shared
 * by the backends. A [B, T, C] activation may be given as a rank-3 tensor or flattened to
 * [B * T, C]; a row-wise operator (norms, bias) sees any tensor of rank >= 2 as a matrix whose
 * columns are its last dimension. Scalar hyper-parameters are checked here too, so every bad
 * argument is named in Java before the native call (the kernels check ids and targets).
 *
 * <p>Activations, their gradients and the weights a forward reads are f32 or bf16, one dtype
 * per call (the kernel's dtype argument); row statistics, attention probabilities, losses and
 * weight gradients are always f32.
 */
final class DenseArgs {
    private DenseArgs() {
    }

    /** Rows and columns of a tensor seen as a matrix. */
    record Matrix(int rows, int cols) {
    }

    /** An f32/bf16 tensor of rank >= 2 as a [rows, cols] matrix, cols = its last dimension. */
    static Matrix matrix(String arg, Tensor t, Device d) {
        Checks.floatTensor(arg, t, d, Checks.anyShape(t));
        require(t.rank() >= 2, arg + ": expected rank >= 2 ([rows, cols] or [B, T, C]), got shape "
                + Arrays.toString(t.shape()));
        int cols = t.dim(t.rank() - 1);
        long rows = cols == 0 ? 0 : t.numel() / cols;
        require(rows <= Integer.MAX_VALUE, arg + ": " + rows + " rows exceed the kernels' int32 row count");
        return new Matrix((int) rows, cols);
    }

    /** An f32/bf16 tensor of rank >= 2 with the given rows and last dimension. */
    static void matrix(String arg, Tensor t, Device d, Matrix expected) {
        Matrix m = matrix(arg, t, d);
        require(m.equals(expected), arg + ": expected " + expected.rows() + " rows of " + expected.cols()
                + " columns (shape [" + expected.rows() + ", " + expected.cols() + "] or [.., " + expected.cols()
                + "]), got shape " + Arrays.toString(t.shape()));
    }

    /** An f32/bf16 activation of batch x seq tokens of width c: shape [b, t, c] or [b * t, c]. */
    static void tokens(String arg, Tensor t, Device d, int batch, int seq, int c) {
        Checks.floatTensor(arg, t, d, Checks.anyShape(t));
        boolean ok = t.rank() == 3 ? Arrays.equals(t.shape(), new int[] {batch, seq, c})
                : t.rank() == 2 && t.dim(0) == batch * seq && t.dim(1) == c;
        require(ok, arg + ": expected shape [" + batch + ", " + seq + ", " + c + "] or [" + batch * seq + ", " + c
                + "], got " + Arrays.toString(t.shape()));
    }

    /** An f32 tensor of n elements, any shape (per-row statistics, flat buffers). */
    static void elements(String arg, Tensor t, Device d, long n) {
        require(floats(arg, t, d) == n, arg + ": expected " + n + " elements, got shape " + Arrays.toString(t.shape()));
    }

    /**
     * ids [B, T] i32, wte [V, C], wpe [maxT >= T, C] of wte's dtype, activation [B, T, C]; the
     * tables are f32 when gradients (tablesF32), else of the activation's dtype.
     */
    static void embedding(Device d, Tensor ids, String wteArg, Tensor wte, String wpeArg, Tensor wpe, String outArg,
            Tensor out, boolean tablesF32) {
        tensor("ids", ids, d, DType.I32, ANY, ANY);
        Checks.floatTensor(outArg, out, d, Checks.anyShape(out));
        tensor(wteArg, wte, d, tablesF32 ? DType.F32 : out.dtype(), ANY, ANY);
        tensor(wpeArg, wpe, d, wte.dtype(), ANY, wte.dim(1));
        require(ids.dim(1) >= 1, "ids: expected shape [B, T >= 1], got " + Arrays.toString(ids.shape()));
        require(wte.dim(0) >= 1 && wte.dim(1) >= 1, wteArg + ": expected shape [vocab >= 1, C >= 1], got "
                + Arrays.toString(wte.shape()));
        require(ids.dim(1) <= wpe.dim(0), "ids: sequence length " + ids.dim(1) + " exceeds the " + wpe.dim(0)
                + " positions of " + wpeArg + " (max seq)");
        tokens(outArg, out, d, ids.dim(0), ids.dim(1), wte.dim(1));
    }

    /**
     * x [rows, C], weight [C] and bias [C] (unless null: RMSNorm) of x's dtype, mean [rows]
     * unless null (RMSNorm), rstd [rows] (f32), outArg like x.
     */
    static Matrix norm(Device d, Tensor x, Tensor weight, Tensor bias, Tensor mean, Tensor rstd, String outArg,
            Tensor out) {
        Matrix m = matrix("x", x, d);
        require(m.cols() >= 1, "x: expected at least one column, got shape " + Arrays.toString(x.shape()));
        tensor("weight", weight, d, x.dtype(), m.cols());
        if (bias != null) {
            tensor("bias", bias, d, x.dtype(), m.cols());
        }
        if (mean != null) {
            elements("mean", mean, d, m.rows());
        }
        elements("rstd", rstd, d, m.rows());
        like(outArg, out, d, m, x);
        return m;
    }

    static void eps(float eps) {
        require(eps > 0 && Float.isFinite(eps), "eps: must be finite and > 0, got " + eps);
    }

    /** A matrix like x: its rows and columns, and its dtype. */
    static void like(String arg, Tensor t, Device d, Matrix m, Tensor x) {
        matrix(arg, t, d, m);
        Checks.sameDtype(arg, t, x);
    }

    /** bias [C] of biasDtype for a matrix x [rows, C]. */
    static Matrix bias(Device d, String biasArg, Tensor bias, DType biasDtype, String xArg, Tensor x) {
        Matrix m = matrix(xArg, x, d);
        tensor(biasArg, bias, d, biasDtype, m.cols());
        return m;
    }

    /** An f32 tensor of any shape; returns its element count. */
    static long floats(String arg, Tensor t, Device d) {
        return Checks.tensorOfAnyShape(arg, t, d, DType.F32).numel();
    }

    /** Elementwise operands: f32 or bf16, the dtype and element count of the first; returns the count. */
    static long sameSize(Device d, String firstArg, Tensor first, String arg, Tensor t) {
        Checks.floatTensor(firstArg, first, d, Checks.anyShape(first));
        Checks.floatTensor(arg, t, d, Checks.anyShape(t));
        Checks.sameDtype(arg, t, first);
        require(t.numel() == first.numel(), arg + ": expected " + first.numel() + " elements like '" + first.name()
                + "' (" + firstArg + "), got shape " + Arrays.toString(t.shape()));
        return first.numel();
    }

    /** Sizes of causal attention, read from att [B, H, T, T] and an [B, T, C] activation. */
    record AttentionSizes(int batch, int seq, int channels, int heads) {
    }

    /** att [B, heads, T, T] f32, outArg [B, T, C] with C divisible by heads, qkvArg [B, T, 3C] of outArg's dtype. */
    static AttentionSizes attention(Device d, int heads, Tensor att, String outArg, Tensor out, String qkvArg,
            Tensor qkv, String... moreQkvArgs) {
        require(heads >= 1, "heads: must be >= 1, got " + heads);
        tensor("att", att, d, DType.F32, ANY, heads, ANY, ANY);
        int batch = att.dim(0);
        int seq = att.dim(2);
        require(att.dim(3) == seq && seq >= 1, "att: expected shape [B, " + heads + ", T, T] with T >= 1, got "
                + Arrays.toString(att.shape()));
        Matrix m = matrix(outArg, out, d);
        int c = m.cols();
        require(c >= 1 && c % heads == 0, "heads: " + heads + " must divide the channels C = " + c + " of " + outArg);
        tokens(outArg, out, d, batch, seq, c);
        tokens(qkvArg, qkv, d, batch, seq, 3 * c);
        Checks.sameDtype(qkvArg, qkv, out);
        return new AttentionSizes(batch, seq, c, heads);
    }

    /**
     * logits [R, V] f32/bf16, targets [R] i32, and an output: losses [R] f32 (perRow) or
     * gradLogits [R, V] of logits' dtype.
     */
    static void crossEntropy(Device d, Tensor logits, Tensor targets, String outArg, Tensor out, boolean perRow) {
        Checks.floatTensor("logits", logits, d, ANY, ANY);
        require(logits.dim(1) >= 1, "logits: expected shape [rows, vocab >= 1], got " + Arrays.toString(logits.shape()));
        tensor("targets", targets, d, DType.I32, logits.dim(0));
        if (perRow) {
            tensor(outArg, out, d, DType.F32, logits.dim(0));
        } else {
            tensor(outArg, out, d, logits.dtype(), logits.shape());
        }
    }

    /** working may be null (no working copy); otherwise f32 or bf16 with params' element count, apart from the rest. */
    static void adamw(Device d, Tensor params, Tensor grads, float gradScale, Tensor m, Tensor v, Tensor working,
            float lr, float beta1, float beta2, float eps, float weightDecay, int step) {
        floats("params", params, d);
        sameSize(d, "params", params, "grads", grads);
        sameSize(d, "params", params, "m", m);
        sameSize(d, "params", params, "v", v);
        if (working != null) {
            Checks.floatTensor("working", working, d, Checks.anyShape(working));
            require(working.numel() == params.numel(), "working: expected " + params.numel()
                    + " elements like params, got shape " + Arrays.toString(working.shape()));
            for (Tensor other : new Tensor[] {params, grads, m, v})
                require(working.numel() == 0 || working.data().asOverlappingSlice(other.data()).isEmpty(),
                        "working: must not overlap '" + other.name() + "'");
        }
        require(gradScale >= 0 && Float.isFinite(gradScale), "gradScale: must be finite and >= 0, got " + gradScale);
        require(lr >= 0 && Float.isFinite(lr), "lr: must be finite and >= 0, got " + lr);
        require(beta1 >= 0 && beta1 < 1, "beta1: must be in [0, 1), got " + beta1);
        require(beta2 >= 0 && beta2 < 1, "beta2: must be in [0, 1), got " + beta2);
        eps(eps);
        require(weightDecay >= 0 && Float.isFinite(weightDecay), "weightDecay: must be finite and >= 0, got "
                + weightDecay);
        require(step >= 1, "step: must be >= 1 (1 on the first update), got " + step);
    }
}
