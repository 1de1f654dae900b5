package dev.panamoe.runtime.model;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * The tensors the forward and backward passes read for the dense parameters (embeddings, norms,
 * linears, head): in f32 the masters themselves; in mixed precision a bf16 working copy of each,
 * rounded from the f32 master after every write of the masters, as Megatron-Core's bf16 does: by
 * the optimizer step itself (through {@link #forEachWorkingCopy}), or by {@link #refresh()} after
 * any other write (a restored checkpoint, loaded weights). The MoE layers keep their own
 * ({@link dev.panamoe.ops.MoELayer#forEachWorkingCopy}).
 */
final class WorkingWeights implements AutoCloseable {
    private final Backend backend;
    private final DType dtype;
    private final TensorScope scope;
    private final Map<Parameter, Tensor> copies = new IdentityHashMap<>();

    WorkingWeights(Backend backend, DType dtype) {
        this.backend = backend;
        this.dtype = dtype;
        this.scope = TensorScope.shared(backend);
    }

    /** Gives p a working copy (in f32: itself); its value is rounded by the next {@link #refresh()}. */
    Parameter add(Parameter p) {
        if (dtype != DType.F32) {
            copies.put(p, scope.allocate(p.name() + ".working", dtype, p.value().shape()));
        }
        return p;
    }

    /** What the passes read for p. */
    Tensor of(Parameter p) {
        return dtype == DType.F32 ? p.value() : copies.get(p);
    }

    /** Gives action each parameter with its working copy (nothing in f32). */
    void forEachWorkingCopy(BiConsumer<Parameter, Tensor> action) {
        copies.forEach(action);
    }

    /** Rounds every master into its working copy (nothing to do in f32). */
    void refresh() {
        forEachWorkingCopy((p, working) -> backend.convert(p.value(), working));
    }

    @Override
    public void close() {
        scope.close();
    }
}
