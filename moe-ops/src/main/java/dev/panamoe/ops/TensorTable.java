package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

/**
 * A native array of the addresses of n tensors of one dtype and shape — the `weights` / `out`
 * argument of the grouped GEMM kernels, where each expert's matrix has its own storage. Built
 * once per layer; {@link #set} swaps one entry (an expert replaced or migrated) in place. The
 * array lives in the scope's memory: on a device the kernels read it there. The kernels reach
 * the entries through raw addresses, so no entry's scope may be closed while a call that reads
 * the table runs (its block could already serve another scope's tensor).
 */
public final class TensorTable {
    private final String name;
    private final TensorScope scope;
    private final MemorySegment addresses;
    private final Tensor[] tensors;

    TensorTable(TensorScope scope, String name, List<Tensor> entries) {
        if (entries == null || entries.isEmpty()) {
            throw new IllegalArgumentException(name + ": a tensor table needs at least one tensor");
        }
        this.name = name;
        this.scope = scope;
        this.tensors = entries.toArray(new Tensor[0]);
        this.addresses = scope.memory().allocateUninitialized(ValueLayout.ADDRESS.byteSize() * tensors.length);
        for (int i = 0; i < tensors.length; i++) {
            set(i, tensors[i]);
        }
    }

    public String name() {
        return name;
    }

    public int size() {
        return tensors.length;
    }

    public Tensor get(int i) {
        return tensors[i];
    }

    public DType dtype() {
        return tensors[0].dtype();
    }

    public int[] entryShape() {
        return tensors[0].shape();
    }

    public Device device() {
        return scope.device();
    }

    /** Replaces entry i by a tensor of the same dtype, shape and device. */
    public void set(int i, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(name + "[" + i + "]: must not be null");
        }
        Tensor first = tensors[0];
        if (t.dtype() != first.dtype() || !Arrays.equals(t.shape(), first.shape()) || !t.device().equals(device())) {
            throw new IllegalArgumentException(name + "[" + i + "]: expected " + first.dtype() + Arrays.toString(first.shape())
                    + " on " + device() + ", got " + t.describe());
        }
        long entry = ValueLayout.ADDRESS.byteSize();
        try (Arena staging = Arena.ofConfined()) {
            MemorySegment address = staging.allocateFrom(ValueLayout.ADDRESS, t.data());
            TensorMemory memory = scope.memory();
            memory.copyFromHost(address, memory.slice(addresses, i * entry, entry), entry);
        }
        tensors[i] = t;
    }

    /** The address array, after checking that the table and every entry are still open. */
    public MemorySegment addresses() {
        if (!scope.isOpen()) {
            throw new IllegalStateException("tensor table '" + name + "' is used after its scope was closed");
        }
        for (Tensor t : tensors) {
            t.checkOpen();
        }
        return addresses;
    }
}
