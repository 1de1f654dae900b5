package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * Sums each parameter's gradient over its {@link ShardedParameter#gradientGroup()} (the replicas
 * that trained on other data) in buckets: consecutive gradients of one group are packed into a
 * buffer of up to bucketElements values and all-reduced with one call, as PyTorch DDP and
 * Megatron do, instead of one call per tensor. A tensor larger than a bucket gets a call of its
 * own. Every rank of a group holds the same parameters in the same order, so the calls match.
 *
 * <p>In bf16 (a bf16 run's {@code gradReduce}, as Megatron-Core's --grad-reduce-in-bf16) a bucket
 * travels as bf16, half the bytes, and is summed in f32: it is rounded to bf16; each rank
 * receives every rank's copy of its 1/size share of the bucket (allToAllV), adds them in f32 in
 * rank order and rounds the sum to bf16; the shares are all-gathered and widened back into the
 * f32 gradients. Every rank ends with the same bits, bf16(sum over ranks of bf16(g)). The sum is
 * this class's own, since communicators never add bf16; a group of one rank is left as it is.
 */
public final class GradientSync implements AutoCloseable {
    /** Gradient values per all-reduce call, as the trainer buckets them. */
    public static final int BUCKET_ELEMENTS = 1 << 20;

    /** Tensors reduced by one all-reduce of buffer[0, size). */
    private record Bucket(Communicator group, List<Tensor> grads, int size) {
    }

    private final Backend backend;
    private final boolean bf16;
    private final TensorScope scope;
    /** f32 only: the bucket. */
    private final Tensor buffer;
    /** bf16 only: the rounded bucket, every rank's copies of this rank's share, and the share's sum. */
    private final Tensor wire, received, share, term, share16;
    private final List<Bucket> buckets = new ArrayList<>();

    /** Sums in f32, or, with bf16, sends the gradients as bf16 and sums them in f32. */
    public GradientSync(Backend backend, List<ShardedParameter> parameters, int bucketElements, boolean bf16) {
        if (bucketElements < 1) {
            throw new IllegalArgumentException("bucketElements: must be >= 1, got " + bucketElements);
        }
        this.backend = backend;
        this.bf16 = bf16;
        Map<Communicator, List<Tensor>> byGroup = new LinkedHashMap<>();
        for (ShardedParameter p : parameters) {
            if (p.gradientGroup() != null) {
                byGroup.computeIfAbsent(p.gradientGroup(), g -> new ArrayList<>()).add(p.parameter().grad());
            }
        }
        for (Map.Entry<Communicator, List<Tensor>> e : byGroup.entrySet()) {
            List<Tensor> pending = new ArrayList<>();
            int size = 0;
            for (Tensor grad : e.getValue()) {
                int n = Math.toIntExact(grad.numel());
                if (!pending.isEmpty() && size + n > bucketElements) {
                    buckets.add(new Bucket(e.getKey(), pending, size));
                    pending = new ArrayList<>();
                    size = 0;
                }
                pending.add(grad);
                size += n;
            }
            if (!pending.isEmpty()) {
                buckets.add(new Bucket(e.getKey(), pending, size));
            }
        }
        int largest = 1, largestShare = 1, wireSize = 1;
        for (Bucket b : buckets) {
            largest = Math.max(largest, b.size());
            largestShare = Math.max(largestShare, shareSize(b));
            wireSize = Math.max(wireSize, shareSize(b) * b.group().size());
        }
        this.scope = TensorScope.shared(backend);
        this.buffer = bf16 ? null : scope.allocate("gradient bucket", DType.F32, largest);
        this.wire = bf16 ? scope.allocate("bf16 gradient bucket", DType.BF16, wireSize) : null;
        this.received = bf16 ? scope.allocate("bf16 gradient shares", DType.BF16, wireSize) : null;
        this.share = bf16 ? scope.allocate("gradient share sum", DType.F32, largestShare) : null;
        this.term = bf16 ? scope.allocate("gradient share term", DType.F32, largestShare) : null;
        this.share16 = bf16 ? scope.allocate("bf16 gradient share sum", DType.BF16, largestShare) : null;
    }

    /** Elements of a bucket each rank of its group sums: the bucket split in group-size equal shares (the last padded). */
    private static int shareSize(Bucket b) {
        return Math.ceilDiv(b.size(), b.group().size());
    }

    /** Number of all-reduce calls per {@link #allReduce()}. */
    public int bucketCount() {
        return buckets.size();
    }

    /** Replaces every gradient by its sum over the parameter's group. */
    public void allReduce() {
        for (Bucket b : buckets) {
            if (bf16) {
                sumInBf16(b);
                continue;
            }
            Tensor flat = buffer.slice(0, b.size());
            forEachPlace(b, flat, (g, place) -> place.copyFrom(g));
            b.group().allReduce(flat);
            forEachPlace(b, flat, (g, place) -> g.copyFrom(place));
        }
    }

    /** action(gradient, its place) for each gradient of b and its slice of the flat bucket, in order. */
    private static void forEachPlace(Bucket b, Tensor flat, BiConsumer<Tensor, Tensor> action) {
        int offset = 0;
        for (Tensor g : b.grads()) {
            int n = Math.toIntExact(g.numel());
            action.accept(g, flat.slice(offset, offset + n));
            offset += n;
        }
    }

    /** The bucket's sum over its group, sent as bf16 and added in f32 (the class comment). */
    private void sumInBf16(Bucket b) {
        int ranks = b.group().size(), n = shareSize(b);
        if (ranks == 1) {
            return;
        }
        Tensor out = wire.slice(0, n * ranks), in = received.slice(0, n * ranks);
        forEachPlace(b, out, backend::convert);
        if (n * ranks > b.size()) {
            out.slice(b.size(), n * ranks).fill(0f);
        }
        int[] counts = new int[ranks];
        Arrays.fill(counts, n);
        b.group().allToAllV(out, counts, in, counts);
        Tensor sum = share.slice(0, n), next = term.slice(0, n), sum16 = share16.slice(0, n);
        backend.convert(in.slice(0, n), sum);
        for (int q = 1; q < ranks; q++) {
            backend.convert(in.slice(q * n, (q + 1) * n), next);
            backend.accumulate(next, sum);
        }
        backend.convert(sum, sum16);
        b.group().allGather(sum16, in);
        forEachPlace(b, in, (g, place) -> backend.convert(place, g));
    }

    @Override
    public void close() {
        scope.close();
    }
}
