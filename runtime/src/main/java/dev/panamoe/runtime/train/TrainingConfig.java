package dev.panamoe.runtime.train;

import dev.panamoe.runtime.data.Tokenizer;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;

/**
 * How a model is trained: the optimizer step count and batch shape, the AdamW and learning-rate
 * schedule hyper-parameters, evaluation, checkpoints and output files. Validated on construction;
 * each message starts with the field's name ("batch: must be >= 1, got 0"), which the command line
 * turns into its option ("--batch").
 *
 * @param steps           optimizer steps of the whole run (the LR schedule spans them)
 * @param batch           sequences per optimizer step
 * @param microBatches    the batch is run as this many forward/backward passes of batch / microBatches
 *                        sequences whose gradients accumulate (must divide batch)
 * @param seq             tokens predicted per sequence
 * @param lr              peak learning rate, reached at the end of the warm-up
 * @param minLr           learning rate at the last step (cosine decay from lr down to it)
 * @param warmup          steps of linear warm-up from lr / warmup to lr (0: none)
 * @param weightDecay     AdamW's decoupled weight decay, applied to matrices only (not biases, norms)
 * @param beta1           AdamW first-moment decay
 * @param beta2           AdamW second-moment decay
 * @param eps             AdamW epsilon
 * @param clipNorm        the global gradient norm is clipped to this (0: no clipping)
 * @param evalEvery       evaluate on held-out data every this many steps, and at the last step (0: only then)
 * @param evalBatches     held-out micro-batches per evaluation (the same sequences every time)
 * @param seed            seed of the model's initialisation (and of a text corpus' sampling)
 * @param checkpointDir   directory of the checkpoint file, or null for no checkpoints
 * @param checkpointEvery write a checkpoint every this many steps (0: only at the end or at stopAt)
 * @param stopAt          end the run after this step, as if interrupted there, keeping the schedule of
 *                        {@code steps}; equal to steps for a full run
 * @param metrics         JSON-lines metrics file, or null
 * @param report          report directory, or null
 * @param tokenizer       the {@link Tokenizer} of a text corpus ("bytes", "gpt2", "cl100k"), or null for
 *                        data that is not text (the synthetic corpus); kept so that sampling reads the
 *                        checkpoint's ids as the run did
 * @param precision       {@link Precision#FP32}, {@link Precision#BF16} (f32 masters, gradients and
 *                        moments; bf16 working copies, activations and activation gradients) or {@link Precision#AUTO}
 *                        (bf16 where the device computes it natively); the model must be built in the
 *                        dtype it resolves to. Not a trajectory field: a run may resume under the other
 *                        precision (the checkpoint holds the f32 masters); null is fp32, the
 *                        precision of the runs that did not record one
 * @param gradReduce      the precision the gradients travel in when they are summed over their replicas
 *                        (data-parallel ranks): {@link Precision#FP32}, or {@link Precision#BF16} in a bf16
 *                        run (rounded to bf16 for the exchange and summed in f32; half the bytes, as
 *                        Megatron-Core's --grad-reduce-in-bf16). A run that resolves to fp32 sums in fp32
 *                        whatever this says; fp32 precision with bf16 here is refused. Not a trajectory
 *                        field, like precision; null is fp32
 */
public record TrainingConfig(int steps, int batch, int microBatches, int seq, float lr, float minLr, int warmup,
        float weightDecay, float beta1, float beta2, float eps, float clipNorm, int evalEvery, int evalBatches,
        long seed, Path checkpointDir, int checkpointEvery, int stopAt, Path metrics, Path report, String tokenizer,
        Precision precision, Precision gradReduce) {

    /**
     * The fields that decide the sequence of parameter values: a checkpoint resumes only a run that
     * agrees on all of them (the others — evaluation, output files, where to stop — may change).
     */
    static final Set<String> TRAJECTORY_FIELDS = Set.of("steps", "batch", "microBatches", "seq", "lr", "minLr",
            "warmup", "weightDecay", "beta1", "beta2", "eps", "clipNorm", "seed");

    public TrainingConfig {
        atLeast("steps", steps, 1);
        atLeast("batch", batch, 1);
        atLeast("microBatches", microBatches, 1);
        check(batch % microBatches == 0, "microBatches: must divide batch=" + batch + ", got " + microBatches);
        atLeast("seq", seq, 1);
        check(lr > 0 && Float.isFinite(lr), "lr: must be finite and > 0, got " + lr);
        check(minLr >= 0 && minLr <= lr, "minLr: must be in [0, lr=" + lr + "], got " + minLr);
        check(warmup >= 0 && warmup <= steps, "warmup: must be in [0, steps=" + steps + "], got " + warmup);
        check(weightDecay >= 0 && Float.isFinite(weightDecay), "weightDecay: must be finite and >= 0, got " + weightDecay);
        check(beta1 >= 0 && beta1 < 1, "beta1: must be in [0, 1), got " + beta1);
        check(beta2 >= 0 && beta2 < 1, "beta2: must be in [0, 1), got " + beta2);
        check(eps > 0 && Float.isFinite(eps), "eps: must be finite and > 0, got " + eps);
        check(clipNorm >= 0 && Float.isFinite(clipNorm), "clipNorm: must be finite and >= 0 (0 = off), got " + clipNorm);
        atLeast("evalEvery", evalEvery, 0);
        atLeast("evalBatches", evalBatches, 1);
        atLeast("checkpointEvery", checkpointEvery, 0);
        check(stopAt >= 1 && stopAt <= steps, "stopAt: must be in [1, steps=" + steps + "], got " + stopAt);
        check(tokenizer == null || Tokenizer.NAMES.contains(tokenizer), "tokenizer: unknown name '" + tokenizer
                + "'; known: " + String.join(", ", Tokenizer.NAMES));
        // a checkpoint written before runs recorded their precision trained in fp32
        precision = precision == null ? Precision.FP32 : precision;
        gradReduce = gradReduce == null ? Precision.FP32 : gradReduce;
        check(gradReduce != Precision.AUTO, "gradReduce: must be fp32 or bf16, got auto");
        check(gradReduce == Precision.FP32 || precision != Precision.FP32,
                "gradReduce: bf16 sums the gradients of a bf16 run, but precision is fp32 (use precision bf16 or auto)");
    }

    /** Whether a run resolved to {@code run} sends its gradients as bf16 (gradReduce bf16, in a bf16 run). */
    public boolean reducesGradientsInBf16(Precision.Resolved run) {
        return gradReduce == Precision.BF16 && run.precision() == Precision.BF16;
    }

    /** Sequences per forward/backward pass. */
    public int microBatchSize() {
        return batch / microBatches;
    }

    /** Whether step {@code step} (from 1) evaluates on held-out data. */
    public boolean evaluatesAt(int step) {
        return step == steps || (evalEvery > 0 && step % evalEvery == 0);
    }

    /** Whether a checkpoint is written after step {@code step}: every checkpointEvery, at stopAt and at the end. */
    public boolean checkpointsAt(int step) {
        return checkpointDir != null
                && (step == stopAt || step == steps || (checkpointEvery > 0 && step % checkpointEvery == 0));
    }

    /** Every field as text, in declaration order (for checkpoints and reports); null paths are "". */
    public Map<String, String> toMap() {
        return RecordFields.of(this);
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * A builder holding this configuration. The warm-up and stopAt are kept only where they differ
     * from their defaults derived from steps, so {@code toBuilder().steps(n)} rescales them.
     */
    public Builder toBuilder() {
        Builder b = new Builder().steps(steps).batch(batch).microBatches(microBatches).seq(seq).lr(lr).minLr(minLr)
                .weightDecay(weightDecay).beta1(beta1).beta2(beta2).eps(eps).clipNorm(clipNorm).evalEvery(evalEvery)
                .evalBatches(evalBatches).seed(seed).checkpointDir(checkpointDir).checkpointEvery(checkpointEvery)
                .metrics(metrics).report(report).tokenizer(tokenizer).precision(precision).gradReduce(gradReduce);
        if (warmup != Builder.defaultWarmup(steps)) {
            b.warmup(warmup);
        }
        if (stopAt != steps) {
            b.stopAt(stopAt);
        }
        return b;
    }

    /**
     * Defaults: 200 steps of 16 sequences of 64 tokens in one micro-batch; lr 3e-3 decaying to 3e-4
     * after a warm-up of a tenth of the steps; weight decay 0.1, betas (0.9, 0.95), eps 1e-8, clip at
     * 1.0; evaluation every 50 steps on 4 micro-batches; seed 1; no checkpoints or output files;
     * stopAt = steps; fp32, gradients summed in fp32.
     */
    public static final class Builder {
        private int steps = 200;
        private int batch = 16;
        private int microBatches = 1;
        private int seq = 64;
        private float lr = 3e-3f;
        private float minLr = 3e-4f;
        private static final int DERIVED = Integer.MIN_VALUE;

        private int warmup = DERIVED;
        private float weightDecay = 0.1f;
        private float beta1 = 0.9f;
        private float beta2 = 0.95f;
        private float eps = 1e-8f;
        private float clipNorm = 1.0f;
        private int evalEvery = 50;
        private int evalBatches = 4;
        private long seed = 1;
        private Path checkpointDir;
        private int checkpointEvery;
        private int stopAt = DERIVED;
        private Path metrics;
        private Path report;
        private String tokenizer;
        private Precision precision = Precision.FP32;
        private Precision gradReduce = Precision.FP32;

        private Builder() {
        }

        static int defaultWarmup(int steps) {
            return steps / 10;
        }

        public Builder steps(int v) { steps = v; return this; }
        public Builder batch(int v) { batch = v; return this; }
        public Builder microBatches(int v) { microBatches = v; return this; }
        public Builder seq(int v) { seq = v; return this; }
        public Builder lr(float v) { lr = v; return this; }
        public Builder minLr(float v) { minLr = v; return this; }
        public Builder warmup(int v) { warmup = v; return this; }
        public Builder weightDecay(float v) { weightDecay = v; return this; }
        public Builder beta1(float v) { beta1 = v; return this; }
        public Builder beta2(float v) { beta2 = v; return this; }
        public Builder eps(float v) { eps = v; return this; }
        public Builder clipNorm(float v) { clipNorm = v; return this; }
        public Builder evalEvery(int v) { evalEvery = v; return this; }
        public Builder evalBatches(int v) { evalBatches = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        public Builder checkpointDir(Path v) { checkpointDir = v; return this; }
        public Builder checkpointEvery(int v) { checkpointEvery = v; return this; }
        public Builder stopAt(int v) { stopAt = v; return this; }
        public Builder metrics(Path v) { metrics = v; return this; }
        public Builder report(Path v) { report = v; return this; }
        public Builder tokenizer(String v) { tokenizer = v; return this; }
        public Builder precision(Precision v) { precision = v; return this; }
        public Builder gradReduce(Precision v) { gradReduce = v; return this; }

        public TrainingConfig build() {
            return new TrainingConfig(steps, batch, microBatches, seq, lr, minLr,
                    warmup == DERIVED ? defaultWarmup(steps) : warmup, weightDecay, beta1, beta2,
                    eps, clipNorm, evalEvery, evalBatches, seed, checkpointDir, checkpointEvery,
                    stopAt == DERIVED ? steps : stopAt, metrics, report, tokenizer, precision, gradReduce);
        }
    }

    private static void atLeast(String field, int value, int min) {
        check(value >= min, field + ": must be >= " + min + ", got " + value);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
