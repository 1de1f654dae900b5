package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Sums each parameter's gradient over its {@link ShardedParameter#gradientGroup()} (the replicas
 * that trained on other data) in buckets: consecutive gradients of one group are packed into a
 * buffer of up to bucketElements values and all-reduced with one call, as PyTorch DDP and
 * Megatron do, instead of one call per tensor. A tensor larger than a bucket gets a call of its
 * own. Every rank of a group holds the same parameters in the same order, so the calls match.
 */
public final class GradientSync implements AutoCloseable {
    /** Gradient values per all-reduce call, as the trainer buckets them. */
    public static final int BUCKET_ELEMENTS = 1 << 20;

    /** Tensors reduced by one all-reduce of buffer[0, size). */
    private record Bucket(Communicator group, List<Tensor> grads, int size) {
    }

    private final TensorScope scope;
    private final Tensor buffer;
    private final List<Bucket> buckets = new ArrayList<>();

    public GradientSync(Backend backend, List<ShardedParameter> parameters, int bucketElements) {
        if (bucketElements < 1) {
            throw new IllegalArgumentException("bucketElements: must be >= 1, got " + bucketElements);
        }
        Map<Communicator, List<Tensor>> byGroup = new LinkedHashMap<>();
        for (ShardedParameter p : parameters) {
            if (p.gradientGroup() != null) {
                byGroup.computeIfAbsent(p.gradientGroup(), g -> new ArrayList<>()).add(p.parameter().grad());
            }
        }
        int largest = 0;
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
        for (Bucket b : buckets) {
            largest = Math.max(largest, b.size());
        }
        this.scope = TensorScope.shared(backend);
        this.buffer = scope.allocate("gradient bucket", DType.F32, Math.max(1, largest));
    }

    /** Number of all-reduce calls per {@link #allReduce()}. */
    public int bucketCount() {
        return buckets.size();
    }

    /** Replaces every gradient by its sum over the parameter's group. */
    public void allReduce() {
        for (Bucket b : buckets) {
            Tensor flat = buffer.slice(0, b.size());
            int offset = 0;
            for (Tensor g : b.grads()) {
                int n = Math.toIntExact(g.numel());
                flat.slice(offset, offset + n).copyFrom(g);
                offset += n;
            }
            b.group().allReduce(flat);
            offset = 0;
            for (Tensor g : b.grads()) {
                int n = Math.toIntExact(g.numel());
                g.copyFrom(flat.slice(offset, offset + n));
                offset += n;
            }
        }
    }

    @Override
    public void close() {
        scope.close();
    }
}
