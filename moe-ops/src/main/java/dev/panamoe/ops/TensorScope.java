package dev.panamoe.ops;

import java.util.Arrays;
import java.util.List;

/**
 * Owns the memory of the tensors allocated in it, on one backend's device; closing the scope
 * frees them all at once, and any later use of them fails with IllegalStateException.
 * A shared scope may be used from any thread; a confined one on the CPU only from the thread
 * that opened it. The memory comes from the backend's caching allocator and goes back to its
 * cache on close.
 */
public final class TensorScope implements AutoCloseable {
    private final Backend backend;
    private final TensorMemory memory;

    private TensorScope(Backend backend, TensorMemory memory) {
        this.backend = backend;
        this.memory = memory;
    }

    public static TensorScope shared(Backend backend) {
        return new TensorScope(backend, backend.openMemory(true));
    }

    public static TensorScope confined(Backend backend) {
        return new TensorScope(backend, backend.openMemory(false));
    }

    public Backend backend() {
        return backend;
    }

    public Device device() {
        return backend.device();
    }

    public boolean isOpen() {
        return memory.isOpen();
    }

    /** A zero-filled tensor. */
    public Tensor allocate(String name, DType dtype, int... shape) {
        return allocate(name, dtype, shape, true);
    }

    /**
     * A tensor whose elements are undefined until written (whatever its cached block held), for
     * an output a kernel overwrites whole: it saves the memset of {@link #allocate}.
     */
    public Tensor allocateUninitialized(String name, DType dtype, int... shape) {
        return allocate(name, dtype, shape, false);
    }

    private Tensor allocate(String name, DType dtype, int[] shape, boolean zero) {
        if (name == null || dtype == null) {
            throw new IllegalArgumentException("name, dtype: must not be null, got " + name + ", " + dtype);
        }
        checkShape(shape);
        if (!isOpen()) {
            throw new IllegalStateException("tensor scope of " + device() + " is closed; cannot allocate '" + name + "'");
        }
        long bytes = Tensor.numel(shape) * dtype.byteSize();
        return new Tensor(this, name, dtype, shape, zero ? memory.allocate(bytes) : memory.allocateUninitialized(bytes));
    }

    public Tensor ofFloats(String name, float[] values, int... shape) {
        Tensor t = allocateUninitialized(name, DType.F32, shape);
        t.copyFrom(values);
        return t;
    }

    public Tensor ofInts(String name, int[] values, int... shape) {
        Tensor t = allocateUninitialized(name, DType.I32, shape);
        t.copyFrom(values);
        return t;
    }

    /** A native table of the addresses of same-shape tensors (the weights argument of the grouped GEMMs). */
    public TensorTable table(String name, List<Tensor> tensors) {
        return new TensorTable(this, name, tensors);
    }

    static void checkShape(int[] shape) {
        if (shape == null) {
            throw new IllegalArgumentException("shape: must not be null");
        }
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("shape: dimensions must be >= 0, got " + Arrays.toString(shape));
            }
            n *= d;
            if (n > Integer.MAX_VALUE * 8L) {
                throw new IllegalArgumentException("shape: too many elements in " + Arrays.toString(shape));
            }
        }
    }

    TensorMemory memory() {
        return memory;
    }

    /** Frees every tensor of this scope; closing twice does nothing. */
    @Override
    public void close() {
        memory.close();
    }
}
