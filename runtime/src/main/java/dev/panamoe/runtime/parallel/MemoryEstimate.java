package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.DType;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.Norm;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The memory one rank of a training run will hold, computed from the shapes before anything is
 * allocated, so that a run that cannot fit is refused in a second instead of growing until the
 * kernel's OOM killer ends it. It counts the buffers {@link dev.panamoe.runtime.model.GptMoeModel},
 * the MoE layers, AdamW and the gradient sync allocate:
 * <ul>
 * <li>parameters, their gradients and AdamW's fp32 first and second moments (4 copies of the
 * rank's shard, free replica slots included); in bf16 a fifth, the bf16 working copy;
 * <li>activations of every micro-batch in flight (1F1B keeps {@link PipelineSchedule#slots} of
 * them on a stage), with the attention scores [batch, heads, seq, seq] and the logits;
 * <li>each MoE layer's workspace per micro-batch in flight, its received-row buffers at their
 * worst case (every source rank sends all it may to this rank's slots: dropless, or the capacity);
 * <li>the gradients shared by all blocks, the gradient-sync bucket, and the Java arrays a
 * parameter is initialised from;
 * <li>on CUDA, the caching allocator's rounding and cached free blocks (a quarter on top).
 * </ul>
 * In bf16 (mixed precision) the activations, their gradients and the MoE layers' rows take 2
 * bytes an element; the parameters' masters, gradients and moments, the attention scores, the
 * norms' statistics, the losses, the router's buffers and every id or count keep 4.
 * Ranks differ by pipeline stage (the first holds the embeddings and the most micro-batches, the
 * last the head); {@link #rankBytes} is the heaviest stage's. Every size is a long; a configuration
 * whose size overflows one is refused.
 */
public final class MemoryEstimate {

    /** One line of the breakdown; javaHeap: on the JVM's heap (arrays), not native memory. */
    public record Part(String name, long bytes, boolean javaHeap) {
        Part(String name, long bytes) {
            this(name, bytes, false);
        }
    }

    private static final long F32 = Float.BYTES;
    /** Ids, counts and offsets (i32) take as much as an f32. */
    private static final long WORD = F32;
    private static final long CUDA_SLACK_DIVISOR = 4;

    private final List<Part> parts;
    private final long rankBytes;
    private final long processBytes;
    private final long rankParameters;
    private final long parameters;
    private final int heaviestStage;
    private final ParallelPlan plan;
    private final Precision.Resolved precision;

    private MemoryEstimate(List<Part> parts, long rankBytes, long processBytes, long rankParameters, long parameters,
            int heaviestStage, ParallelPlan plan, Precision.Resolved precision) {
        this.parts = List.copyOf(parts);
        this.rankBytes = rankBytes;
        this.processBytes = processBytes;
        this.rankParameters = rankParameters;
        this.parameters = parameters;
        this.heaviestStage = heaviestStage;
        this.plan = plan;
        this.precision = precision;
    }

    /**
     * The estimate for training model with config under plan ({@link ParallelPlan#SINGLE} for one
     * rank), with slotsPerDevice expert slots per EP rank in each MoE layer (experts / ep, more
     * with replica slots), on device (a CUDA device, or the CPU), in the config's precision as it
     * resolves there (auto: as the run will). Throws IllegalArgumentException when a size
     * overflows a long.
     */
    public static MemoryEstimate of(GptMoeConfig model, TrainingConfig config, ParallelPlan plan, int slotsPerDevice,
            Device device) {
        Precision.Resolved precision = config.precision().resolve(device);
        boolean cuda = !device.isCpu();
        try {
            List<Part> heaviest = null;
            long heaviestBytes = -1;
            long process = 0;
            int heaviestStage = 0;
            long rankParameters = 0;
            for (int stage = 0; stage < plan.pp(); stage++) {
                Stage s = new Stage(model, config, plan, slotsPerDevice, stage, precision);
                List<Part> p = s.parts(cuda);
                long bytes = sum(p);
                process = Math.addExact(process, Math.multiplyExact(bytes, (long) plan.stageSize()));
                if (bytes > heaviestBytes) {
                    heaviest = p;
                    heaviestBytes = bytes;
                    heaviestStage = stage;
                    rankParameters = s.parameterElements();
                }
            }
            return new MemoryEstimate(heaviest, heaviestBytes, process, rankParameters, model.parameterCount(),
                    heaviestStage, plan, precision);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("model: the memory of " + model.layers() + " blocks of hidden "
                    + model.hidden() + " with " + model.experts() + " experts, " + config.microBatchSize() + " x "
                    + config.seq() + " tokens per micro-batch overflows a 64-bit byte count; it cannot fit any machine", e);
        }
    }

    /** The heaviest rank's bytes. */
    public long rankBytes() {
        return rankBytes;
    }

    /** Every rank's bytes summed: what one process needs when all ranks are threads of it. */
    public long worldBytes() {
        return processBytes;
    }

    /** The model's trainable scalars (all ranks together). */
    public long parameters() {
        return parameters;
    }

    /** The heaviest rank's parameter scalars (its shards, replica slots and tied copy included). */
    public long rankParameters() {
        return rankParameters;
    }

    /** The precision the estimate is for (auto resolved on its device). */
    public Precision.Resolved precision() {
        return precision;
    }

    /** The part of {@link #rankBytes} on the Java heap. */
    public long javaHeapBytes() {
        return parts.stream().filter(Part::javaHeap).mapToLong(Part::bytes).sum();
    }

    /** The heaviest rank's breakdown. */
    public List<Part> parts() {
        return parts;
    }

    /** The breakdown, one part a line, then the rank's and the world's totals. */
    public String describe() {
        StringBuilder s = new StringBuilder();
        String who = plan.world() == 1 ? "the one rank" : "the heaviest rank (stage " + heaviestStage + " of "
                + plan.pp() + ")";
        s.append(String.format(Locale.ROOT, "memory estimate of %s, %d parameters on it, in %s:%n", who,
                rankParameters, precision));
        int width = Math.max(52, parts.stream().mapToInt(p -> p.name().length()).max().orElse(0));
        String line = "  %-" + width + "s %12s%n";
        for (Part p : parts) {
            s.append(String.format(Locale.ROOT, line, p.name(), bytes(p.bytes())));
        }
        s.append(String.format(Locale.ROOT, line, "total per rank", bytes(rankBytes)));
        if (plan.world() > 1) {
            s.append(String.format(Locale.ROOT, line, "total of the " + plan.world() + " ranks", bytes(processBytes)));
        }
        return s.toString();
    }

    /** "2.00 TiB", "1.50 GiB", "12.0 MiB", "512 B". */
    public static String bytes(long n) {
        if (n >= 1L << 40) {
            return String.format(Locale.ROOT, "%.2f TiB", n / (double) (1L << 40));
        }
        if (n >= 1L << 30) {
            return String.format(Locale.ROOT, "%.2f GiB", n / (double) (1L << 30));
        }
        if (n >= 1L << 20) {
            return String.format(Locale.ROOT, "%.1f MiB", n / (double) (1L << 20));
        }
        if (n >= 1L << 10) {
            return String.format(Locale.ROOT, "%.1f KiB", n / (double) (1L << 10));
        }
        return n + " B";
    }

    private static long sum(List<Part> parts) {
        long total = 0;
        for (Part p : parts) {
            total = Math.addExact(total, p.bytes());
        }
        return total;
    }

    private static long mul(long... factors) {
        long product = 1;
        for (long f : factors) {
            product = Math.multiplyExact(product, f);
        }
        return product;
    }

    private static long add(long... terms) {
        long total = 0;
        for (long t : terms) {
            total = Math.addExact(total, t);
        }
        return total;
    }

    /**
     * Buffer elements of the run's dtype (narrow: f32, or bf16 in mixed precision) and of four
     * bytes whatever the precision (f32 statistics and losses, i32 ids, counts and offsets).
     */
    private record Elements(long narrow, long wide) {
        Elements plus(Elements o) {
            return new Elements(add(narrow, o.narrow), add(wide, o.wide));
        }

        Elements times(long factor) {
            return new Elements(mul(narrow, factor), mul(wide, factor));
        }

        long bytes(DType dtype) {
            return add(mul(narrow, dtype.byteSize()), mul(wide, WORD));
        }
    }

    /** The buffers of one rank of one pipeline stage, mirroring the allocations of the classes named. */
    private static final class Stage {
        final GptMoeConfig m;
        final ParallelPlan plan;
        final int slotsPerDevice;
        /** The activations' and working copies' dtype, and its name as the command line spells it. */
        final DType dtype;
        final String label;
        final boolean first;
        final boolean last;
        final int blocks;
        final int moeBlocks;
        final int slots;
        final long batch;
        final long seq;
        final long n;
        final long c;
        final long tp;
        final long normParams;
        /** Per token: LayerNorm's mean and rstd, RMSNorm's rstd (f32 in either precision). */
        final long stats;
        /** The gradients cross ranks as bf16 (GradientSync's extra buffers). */
        final boolean gradReduceBf16;

        Stage(GptMoeConfig model, TrainingConfig config, ParallelPlan plan, int slotsPerDevice, int stage,
                Precision.Resolved precision) {
            this.m = model;
            this.plan = plan;
            this.slotsPerDevice = slotsPerDevice;
            this.dtype = precision.dtype();
            this.label = precision.precision().label();
            this.gradReduceBf16 = config.reducesGradientsInBf16(precision);
            this.first = stage == 0;
            this.last = stage == plan.pp() - 1;
            this.blocks = model.layers() / plan.pp();
            int moe = 0;
            for (int l = stage * blocks; l < (stage + 1) * blocks; l++) {
                moe += model.isMoeBlock(l) ? 1 : 0;
            }
            this.moeBlocks = moe;
            this.slots = PipelineSchedule.slots(stage, plan.pp(), config.microBatches());
            this.batch = config.microBatchSize() / plan.dataParallel();
            this.seq = config.seq();
            this.n = mul(batch, seq);
            this.c = model.hidden();
            this.tp = plan.tp();
            this.normParams = model.norm() == Norm.LAYER ? 2 * c : c;
            this.stats = model.norm() == Norm.LAYER ? 2 : 1;
        }

        /** The model's parameter shards on this rank: embeddings, blocks, final norm and head. */
        long parameterElements() {
            long vc = mul(m.vocab(), c);
            long embeddings = add(first ? vc : 0, first ? mul(m.maxSeq(), c) : 0,
                    last && m.tiedEmbeddings() && !first ? vc : 0, last && !m.tiedEmbeddings() ? vc : 0,
                    last ? normParams : 0);
            long attention = add(2 * normParams, mul(c, 3 * c) / tp, 3 * c / tp, mul(c, c) / tp, c);
            long f = m.denseFfn() / tp;
            long dense = add(mul(c, f), f, mul(f, c), c);
            long ffn = m.expertFfn() / tp;
            long expert = add(mul(c, m.expertActivation().inputWidth(Math.toIntExact(ffn))), mul(ffn, c));
            long moe = add(mul(c, m.experts()), mul(slotsPerDevice, expert));
            return add(embeddings, mul(blocks, attention), mul(moeBlocks, moe), mul(blocks - moeBlocks, dense));
        }

        List<Part> parts(boolean cuda) {
            List<Part> parts = new ArrayList<>();
            long params = parameterElements();
            boolean mixed = dtype != DType.F32;
            parts.add(new Part(mixed ? "parameters (fp32 masters)" : "parameters (fp32)", mul(params, F32)));
            parts.add(new Part("gradients (fp32)", mul(params, F32)));
            parts.add(new Part("AdamW moments m and v (fp32)", mul(2, params, F32)));
            if (mixed) {
                // what the forward and backward GEMMs read, rounded from the masters after every step
                parts.add(new Part("working copies of the parameters (" + label + ")", mul(params, dtype.byteSize())));
            }
            String inFlight = slots + " micro-batch" + (slots == 1 ? "" : "es") + " of " + batch + " x " + seq
                    + " tokens";
            parts.add(new Part("attention scores (fp32), " + inFlight,
                    mul(slots, blocks, batch, m.heads() / tp, seq, seq, F32)));
            Elements activations = activationElements().times(slots);
            parts.add(new Part("activations (" + label + "), " + inFlight, mul(activations.narrow(), dtype.byteSize())));
            parts.add(new Part("norm statistics, ids and losses (4 bytes), " + inFlight, mul(activations.wide(), WORD)));
            parts.add(new Part("MoE workspaces (" + moeBlocks + " layer" + (moeBlocks == 1 ? "" : "s") + " x " + slots
                    + ", " + (m.capacityFactor() == MoELayer.Config.DROPLESS ? "dropless" : "capacity")
                    + " worst case)", moeWorkspaceElements().times(mul(slots, moeBlocks)).bytes(dtype)));
            parts.add(new Part("gradients shared by the blocks (" + label + ")",
                    mul(gradientBufferElements(), dtype.byteSize())));
            if (plan.world() > 1) {
                long bucket = Math.min(params, Math.max(GradientSync.BUCKET_ELEMENTS, largestTensor()));
                if (gradReduceBf16) {
                    // sent and received as bf16; a rank's share (at most half a bucket) summed in f32 and rounded
                    parts.add(new Part("gradient all-reduce bucket as bf16, sent and received, and a share's sums",
                            mul(bucket, 2 * 2) + mul(Math.ceilDiv(bucket, 2), F32 + F32 + 2)));
                } else {
                    parts.add(new Part("gradient all-reduce bucket (fp32)", mul(bucket, F32)));
                }
            }
            // ParameterInit fills a float[] of the full tensor, and a shard is cut from it as another one
            parts.add(new Part("initialisation arrays (Java heap, transient)", mul(2, largestTensor(), F32), true));
            if (cuda) {
                parts.add(new Part("CUDA caching allocator rounding and cache (1/4)", sum(parts) / CUDA_SLACK_DIVISOR));
            }
            return parts;
        }

        /**
         * One micro-batch's activation slot of the model but the attention scores: its input (and
         * ids), BlockActivations per block, HeadActivations (targets, logits, losses) on the last
         * stage. The norms' statistics, the losses and the ids are the wide part.
         */
        private Elements activationElements() {
            long perBlock = add(mul(n, c), mul(n, 3 * c / tp), mul(n, c / tp), mul(3, n, c), mul(n, c));
            long denseExtra = add(mul(2, n, m.denseFfn() / tp), mul(n, c));
            long narrow = add(mul(n, c), mul(blocks, perBlock), mul(blocks - moeBlocks, denseExtra),
                    last ? add(mul(n, c), mul(n, m.vocab())) : 0);
            long wide = add(first ? n : 0, mul(blocks, 2 * stats, n), last ? add(n, mul(stats, n), n) : 0);
            return new Elements(narrow, wide);
        }

        /**
         * One MoE layer's workspace for one micro-batch: on one rank every row buffer is sized for
         * all T * K slots (the rows stay); otherwise token-sized buffers, plus the exchange's and
         * the experts' received-row buffers at their worst case. The rows and the layer's input
         * and output gradients are of the run's dtype; the router's buffers stay f32, and a bf16
         * layer keeps a bf16 copy of the router's logit gradient for its GEMMs.
         */
        private Elements moeWorkspaceElements() {
            long e = m.experts();
            long k = m.topK();
            Elements router = new Elements(dtype == DType.F32 ? 0 : mul(n, e), add(mul(4, n, e), mul(5, n, k),
                    mul(4, e), 4));
            if (plan.world() == 1) {
                long hWidth = m.expertActivation().inputWidth(m.expertFfn());
                long rows = mul(n, k);
                return router.plus(new Elements(add(mul(3, rows, c), mul(2, rows, hWidth), mul(2, rows, m.expertFfn()),
                        mul(2, n, c)), mul(2, rows)));
            }
            long localFfn = m.expertFfn() / tp;
            long hWidth = m.expertActivation().inputWidth(Math.toIntExact(localFfn));
            long fromEachSource = mul(n, Math.min(k, slotsPerDevice));
            if (m.capacityFactor() != MoELayer.Config.DROPLESS) {
                long capacity = (long) Math.ceil(mul(n, k) * m.capacityFactor() / e);
                fromEachSource = Math.min(fromEachSource, mul(slotsPerDevice, capacity));
            }
            long received = mul(plan.ep(), fromEachSource);
            Elements tokenBuffers = new Elements(add(mul(3, n, k, c), mul(2, n, c)),
                    add(n, mul(2, plan.ep(), slotsPerDevice)));
            Elements rowBuffers = new Elements(add(mul(4, received, c), mul(2, received, hWidth),
                    mul(2, received, localFfn)), mul(2, received));
            return router.plus(tokenBuffers).plus(rowBuffers);
        }

        /** BlockGradients: shared by every block of the stage (one backward at a time), all of the run's dtype. */
        private long gradientBufferElements() {
            long dense = m.moeEvery() > 1 ? mul(2, n, m.denseFfn() / tp) : 0;
            return add(last ? mul(n, m.vocab()) : 0, mul(3, n, c), mul(n, c / tp), mul(n, 3 * c / tp), dense);
        }

        /** The largest full (unsharded) parameter tensor. */
        private long largestTensor() {
            long expertW1 = mul(c, m.expertActivation().inputWidth(m.expertFfn()));
            return Math.max(Math.max(mul(m.vocab(), c), mul(m.maxSeq(), c)),
                    Math.max(mul(c, 3 * c), Math.max(mul(c, m.denseFfn()), Math.max(expertW1, mul(c, m.experts())))));
        }
    }
}
