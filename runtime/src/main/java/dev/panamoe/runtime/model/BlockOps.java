package dev.panamoe.runtime.model;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.report.OperatorTimer;
import java.util.function.UnaryOperator;

/**
 * The forward and backward of a pre-norm GPT block and of the final norm, LM head and loss, as
 * one sequence of backend calls for the single-device {@link GptMoeModel} and for a pipeline
 * stage of a parallel run. A tensor-parallel caller holds heads / tp heads and passes a GEMM
 * summed over its TENSOR group: it gives a row-parallel layer's output before the bias (Megatron's
 * g) and a column-parallel layer's input gradient (f's backward); alone it is a plain GEMM, and
 * the sequence is then exactly llm.c's. The FFN of an MoE block is the caller's (its layer and
 * workspace differ); a dense one is fc -> GeLU -> proj.
 */
public final class BlockOps {
    /** GPT-2's norm epsilon. */
    public static final float NORM_EPS = 1e-5f;

    /** A linear layer y = x · weight + bias; weight [in, out], bias [out]. */
    public record Linear(Parameter weight, Parameter bias) {
    }

    /** Norm weights; bias is null for RMSNorm. */
    public record NormWeights(Parameter weight, Parameter bias) {
    }

    /** A pre-norm block: attention, then either a dense FFN (fc, fcProj) or an MoE layer M. */
    public record Block<M>(NormWeights ln1, Linear qkv, Linear attnProj, NormWeights ln2, Linear fc, Linear fcProj,
            M moe) {
    }

    private final Backend backend;
    private final WorkingWeights weights;
    private final int heads;
    private final SummedGemm tensorSummedGemm;
    private OperatorTimer timer;

    /** c = a · op(b), summed over the TENSOR group (a GEMM alone). */
    @FunctionalInterface
    interface SummedGemm {
        void gemm(Tensor a, boolean transB, Tensor b, Tensor c);
    }

    /**
     * weights: what the passes read for each parameter (its master, or its bf16 working copy);
     * heads: the attention heads this rank computes.
     */
    BlockOps(Backend backend, WorkingWeights weights, int heads, SummedGemm tensorSummedGemm) {
        this.backend = backend;
        this.weights = weights;
        this.heads = heads;
        this.tensorSummedGemm = tensorSummedGemm;
    }

    /** Times each operator under its kind ("attention", "moe.backward", ...); null = off. */
    public void setTimer(OperatorTimer timer) {
        this.timer = timer;
    }

    /** A running span of the operator, or null (try-with-resources skips a null resource). */
    public OperatorTimer.Span time(String operator) {
        return timer == null ? null : timer.start(operator);
    }

    // ---- forward ----

    /** Causal self-attention: out [N, C] from qkv [N, 3C], keeping what backward needs in att. */
    @FunctionalInterface
    public interface Attention {
        void forward(Tensor qkv, Tensor att, Tensor out);
    }

    /** Returns the block's output [N, C] from its input (the residual stream); moeForward maps ln2 to the MoE output. */
    public Tensor blockForward(Block<?> b, BlockActivations x, Tensor residual, UnaryOperator<Tensor> moeForward) {
        return blockForward(b, x, residual, moeForward, (qkv, att, out) -> backend.attentionForward(heads, qkv, att, out));
    }

    /**
     * The same with another attention over the block's qkv, e.g. one that reads earlier positions'
     * keys and values from a cache (decoding one token at a time).
     */
    public Tensor blockForward(Block<?> b, BlockActivations x, Tensor residual, UnaryOperator<Tensor> moeForward,
            Attention attention) {
        norm(b.ln1(), residual, x.ln1, x.ln1Mean, x.ln1Rstd);
        columnParallel(b.qkv(), x.ln1, x.qkv);
        try (var t = time("attention")) {
            attention.forward(x.qkv, x.att, x.attOut);
        }
        rowParallel(b.attnProj(), x.attOut, x.attProj);
        residual(residual, x.attProj, x.resAtt);
        norm(b.ln2(), x.resAtt, x.ln2, x.ln2Mean, x.ln2Rstd);
        Tensor ffnOut;
        if (b.moe() != null) {
            try (var t = time("moe")) {
                ffnOut = moeForward.apply(x.ln2);
            }
        } else {
            columnParallel(b.fc(), x.ln2, x.fcPre);
            try (var t = time("gelu")) {
                backend.activationForward(Activation.GELU, x.fcPre, x.fcAct);
            }
            rowParallel(b.fcProj(), x.fcAct, x.ffnOut);
            ffnOut = x.ffnOut;
        }
        residual(x.resAtt, ffnOut, x.out);
        return x.out;
    }

    /** Mean cross-entropy over h's kept targets of normf(x) · head^T. */
    public float headForward(NormWeights lnf, Parameter head, Tensor x, HeadActivations h) {
        Tensor logits = headLogits(lnf, head, x, h);
        try (var t = time("cross_entropy")) {
            return backend.crossEntropyForward(logits, h.targets, h.losses);
        }
    }

    /** normf(x) · head^T into h's logits [N, vocab], which it returns. */
    public Tensor headLogits(NormWeights lnf, Parameter head, Tensor x, HeadActivations h) {
        norm(lnf, x, h.lnf, h.lnfMean, h.lnfRstd);
        try (var t = time("lm_head")) {
            backend.gemm(false, true, 1f, h.lnf, weights.of(head), 0f, h.logits);
        }
        return h.logits;
    }

    /** out = x · W[:, this rank's columns] + b[those columns]; x is the same on every TENSOR rank. */
    private void columnParallel(Linear l, Tensor x, Tensor out) {
        try (var t = time("linear")) {
            backend.gemm(false, false, 1f, x, weights.of(l.weight()), 0f, out);
            backend.biasAdd(weights.of(l.bias()), out);
        }
    }

    /** out = sum over the TENSOR group of x_r · W[rows of r] (all-reduce), + b. */
    private void rowParallel(Linear l, Tensor x, Tensor out) {
        try (var t = time("linear")) {
            tensorSummedGemm.gemm(x, false, weights.of(l.weight()), out);
            backend.biasAdd(weights.of(l.bias()), out);
        }
    }

    private void norm(NormWeights n, Tensor x, Tensor out, Tensor mean, Tensor rstd) {
        try (var t = time("norm")) {
            if (n.bias() != null) {
                backend.layerNormForward(x, weights.of(n.weight()), weights.of(n.bias()), NORM_EPS, out, mean, rstd);
            } else {
                backend.rmsNormForward(x, weights.of(n.weight()), NORM_EPS, out, rstd);
            }
        }
    }

    private void residual(Tensor x, Tensor branch, Tensor out) {
        try (var t = time("residual")) {
            backend.add(x, branch, out);
        }
    }

    // ---- backward ----

    /**
     * Starts backward from the loss: g.dResidual = d(meanScale * sum of the kept losses) / d x,
     * where x was headForward's input; the head's and lnf's gradients accumulate.
     */
    public void headBackward(NormWeights lnf, Parameter head, Tensor x, HeadActivations h, float meanScale,
            BlockGradients g) {
        try (var t = time("cross_entropy.backward")) {
            backend.crossEntropyBackward(h.logits, h.targets, meanScale, g.dLogits);
        }
        try (var t = time("lm_head.backward")) {
            backend.gemm(true, false, 1f, g.dLogits, h.lnf, 1f, head.grad());
            backend.gemm(false, false, 1f, g.dLogits, weights.of(head), 0f, g.dNormOut);
        }
        normBackward(lnf, x, h.lnfMean, h.lnfRstd, g.dNormOut, g.dResidual);
    }

    /**
     * On entry g.dResidual holds d loss / d (block output); on exit d loss / d (block input).
     * moeBackward maps d loss / d (MoE output) to d loss / d ln2.
     */
    public void blockBackward(Block<?> b, BlockActivations x, Tensor residual, BlockGradients g,
            UnaryOperator<Tensor> moeBackward) {
        Tensor dLn2;
        if (b.moe() != null) {
            try (var t = time("moe.backward")) {
                dLn2 = moeBackward.apply(g.dResidual);
            }
        } else {
            linearBackward(b.fcProj(), x.fcAct, g.dResidual, g.dFcAct, false);
            try (var t = time("gelu.backward")) {
                backend.activationBackward(Activation.GELU, x.fcPre, g.dFcAct, g.dFcPre);
            }
            linearBackward(b.fc(), x.ln2, g.dFcPre, g.dNormOut, true);
            dLn2 = g.dNormOut;
        }
        normBackward(b.ln2(), x.resAtt, x.ln2Mean, x.ln2Rstd, dLn2, g.dNormIn);
        residualBackward(g.dNormIn, g.dResidual);
        linearBackward(b.attnProj(), x.attOut, g.dResidual, g.dAttOut, false);
        try (var t = time("attention.backward")) {
            backend.attentionBackward(heads, x.qkv, x.att, g.dAttOut, g.dQkv);
        }
        linearBackward(b.qkv(), x.ln1, g.dQkv, g.dNormOut, true);
        normBackward(b.ln1(), residual, x.ln1Mean, x.ln1Rstd, g.dNormOut, g.dNormIn);
        residualBackward(g.dNormIn, g.dResidual);
    }

    /**
     * weight.grad += x^T · dOut, bias.grad += column sums of dOut, dx = dOut · weight^T. A
     * column-parallel layer's dx is summed over the TENSOR group (f's backward); a row-parallel
     * layer needs no sum: dOut is the same on every TENSOR rank and dx is this rank's rows' part.
     */
    private void linearBackward(Linear l, Tensor x, Tensor dOut, Tensor dx, boolean columnParallel) {
        try (var t = time("linear.backward")) {
            backend.gemm(true, false, 1f, x, dOut, 1f, l.weight().grad());
            backend.biasBackward(dOut, l.bias().grad());
            if (columnParallel) {
                tensorSummedGemm.gemm(dOut, true, weights.of(l.weight()), dx);
            } else {
                backend.gemm(false, true, 1f, dOut, weights.of(l.weight()), 0f, dx);
            }
        }
    }

    /** dx = d loss / d x (overwritten); the weight (and bias) gradients accumulate. */
    private void normBackward(NormWeights n, Tensor x, Tensor mean, Tensor rstd, Tensor dOut, Tensor dx) {
        try (var t = time("norm.backward")) {
            if (n.bias() != null) {
                backend.layerNormBackward(x, weights.of(n.weight()), mean, rstd, dOut, dx, n.weight().grad(),
                        n.bias().grad());
            } else {
                backend.rmsNormBackward(x, weights.of(n.weight()), rstd, dOut, dx, n.weight().grad());
            }
        }
    }

    /** The residual stream's gradient gains a branch's gradient: dResidual += dBranch. */
    private void residualBackward(Tensor dBranch, Tensor dResidual) {
        try (var t = time("residual.backward")) {
            backend.accumulate(dBranch, dResidual);
        }
    }

    // ---- buffers ----

    /** LayerNorm's per-row means; RMSNorm has none. */
    private static Tensor mean(TensorScope s, GptMoeConfig config, String name, int rows) {
        return config.norm() == Norm.LAYER ? s.allocate(name, DType.F32, rows) : null;
    }

    /**
     * One block's activations of one (micro-)batch, kept from forward for backward, in the
     * model's dtype (f32, or bf16 in mixed precision); the norms' statistics (per token) and the
     * attention probabilities are f32. Widths are this rank's shards over tp TENSOR ranks: 3C/tp,
     * C/tp, denseFfn/tp.
     */
    public static final class BlockActivations {
        final Tensor ln1;
        final Tensor ln1Mean;
        final Tensor ln1Rstd;
        final Tensor qkv;
        final Tensor att;
        final Tensor attOut;
        final Tensor attProj;
        final Tensor resAtt;
        final Tensor ln2;
        final Tensor ln2Mean;
        final Tensor ln2Rstd;
        // dense FFN only (the MoE layer keeps its own)
        final Tensor fcPre;
        final Tensor fcAct;
        final Tensor ffnOut;
        final Tensor out;

        public BlockActivations(TensorScope s, GptMoeConfig config, DType dtype, String prefix, int batch, int seq,
                int tp, boolean moe) {
            int n = batch * seq;
            int c = config.hidden();
            int f = config.denseFfn() / tp;
            String p = prefix;
            ln1 = s.allocate(p + "ln1", dtype, n, c);
            ln1Mean = mean(s, config, p + "ln1.mean", n);
            ln1Rstd = s.allocate(p + "ln1.rstd", DType.F32, n);
            qkv = s.allocate(p + "qkv", dtype, n, 3 * c / tp);
            att = s.allocate(p + "att", DType.F32, batch, config.heads() / tp, seq, seq);
            attOut = s.allocate(p + "attOut", dtype, n, c / tp);
            attProj = s.allocate(p + "attProj", dtype, n, c);
            resAtt = s.allocate(p + "resAtt", dtype, n, c);
            ln2 = s.allocate(p + "ln2", dtype, n, c);
            ln2Mean = mean(s, config, p + "ln2.mean", n);
            ln2Rstd = s.allocate(p + "ln2.rstd", DType.F32, n);
            fcPre = moe ? null : s.allocate(p + "fcPre", dtype, n, f);
            fcAct = moe ? null : s.allocate(p + "fcAct", dtype, n, f);
            ffnOut = moe ? null : s.allocate(p + "ffnOut", dtype, n, c);
            out = s.allocate(p + "out", dtype, n, c);
        }

        /** The block's output [N, C]. */
        public Tensor out() {
            return out;
        }
    }

    /** The final norm's, head's and loss's buffers of one (micro-)batch of n tokens and its targets; losses are f32. */
    public static final class HeadActivations {
        final Tensor targets;
        final Tensor lnf;
        final Tensor lnfMean;
        final Tensor lnfRstd;
        final Tensor logits;
        final Tensor losses;
        private int keptTargets;

        public HeadActivations(TensorScope s, GptMoeConfig config, DType dtype, int n) {
            targets = s.allocate("targets", DType.I32, n);
            lnf = s.allocate("lnf", dtype, n, config.hidden());
            lnfMean = mean(s, config, "lnf.mean", n);
            lnfRstd = s.allocate("lnf.rstd", DType.F32, n);
            logits = s.allocate("logits", dtype, n, config.vocab());
            losses = s.allocate("losses", DType.F32, n);
        }

        /** Takes the targets ([n], in [0, vocab) or -1 for none) of the next forward. */
        public void setTargets(int[] values) {
            targets.copyFrom(values);
            keptTargets = 0;
            for (int t : values) {
                keptTargets += t >= 0 ? 1 : 0;
            }
        }

        /** Targets that count in the mean loss (not -1). */
        public int keptTargets() {
            return keptTargets;
        }
    }

    /** Gradient buffers of n tokens shared by all blocks (one backward runs at a time); dtype and widths as BlockActivations'. */
    public static final class BlockGradients {
        final Tensor dLogits;
        final Tensor dResidual;
        final Tensor dNormOut;
        final Tensor dNormIn;
        final Tensor dAttOut;
        final Tensor dQkv;
        final Tensor dFcAct;
        final Tensor dFcPre;

        /** withHead: for {@link #headBackward} too; dFcAct and dFcPre only when some block is dense. */
        public BlockGradients(TensorScope s, GptMoeConfig config, DType dtype, int n, int tp, boolean withHead) {
            int c = config.hidden();
            int f = config.denseFfn() / tp;
            boolean anyDense = config.moeEvery() > 1;
            dLogits = withHead ? s.allocate("dLogits", dtype, n, config.vocab()) : null;
            dResidual = s.allocate("dResidual", dtype, n, c);
            dNormOut = s.allocate("dNormOut", dtype, n, c);
            dNormIn = s.allocate("dNormIn", dtype, n, c);
            dAttOut = s.allocate("dAttOut", dtype, n, c / tp);
            dQkv = s.allocate("dQkv", dtype, n, 3 * c / tp);
            dFcAct = anyDense ? s.allocate("dFcAct", dtype, n, f) : null;
            dFcPre = anyDense ? s.allocate("dFcPre", dtype, n, f) : null;
        }

        /** d loss / d (residual stream) at the point backward has reached. */
        public Tensor dResidual() {
            return dResidual;
        }
    }
}
