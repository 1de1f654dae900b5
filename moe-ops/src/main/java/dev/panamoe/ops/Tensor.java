package dev.panamoe.ops;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A dense row-major array of one dtype on one device, owned by a {@link TensorScope}. The tensor
 * is valid while its scope is open; any use after the scope is closed throws
 * IllegalStateException naming the tensor. Views ({@link #slice}, {@link #reshape}) share the
 * memory and the scope of their base tensor.
 *
 * <p>The host accessors (get/set/copy/fill) need a CPU tensor; kernels go through a {@link Backend}.
 */
public final class Tensor {
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT;

    private final TensorScope scope;
    private final String name;
    private final DType dtype;
    private final int[] shape;
    private final long numel;
    private final MemorySegment segment;

    Tensor(TensorScope scope, String name, DType dtype, int[] shape, MemorySegment segment) {
        this.scope = scope;
        this.name = name;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.numel = numel(shape);
        this.segment = segment;
    }

    static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    public String name() {
        return name;
    }

    public DType dtype() {
        return dtype;
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public int dim(int i) {
        return shape[i];
    }

    public long numel() {
        return numel;
    }

    public long byteSize() {
        return numel * dtype.byteSize();
    }

    public Device device() {
        return scope.device();
    }

    public TensorScope scope() {
        return scope;
    }

    public boolean isOpen() {
        return scope.isOpen();
    }

    /** The memory, for a Backend to hand to a kernel. Throws IllegalStateException once the scope is closed. */
    public MemorySegment data() {
        checkOpen();
        return segment;
    }

    void checkOpen() {
        if (!scope.isOpen()) {
            throw new IllegalStateException("tensor " + describe() + " is used after its scope was closed");
        }
    }

    /** Rows [from, to) of the first dimension, sharing this tensor's memory. */
    public Tensor slice(int from, int to) {
        checkOpen();
        if (rank() == 0 || from < 0 || to < from || to > shape[0]) {
            throw new IllegalArgumentException("slice: rows [" + from + ", " + to + ") out of range for " + describe());
        }
        int[] viewShape = shape.clone();
        viewShape[0] = to - from;
        long rowBytes = (shape[0] == 0 ? 0 : byteSize() / shape[0]);
        return new Tensor(scope, name, dtype, viewShape, segment.asSlice(from * rowBytes, (to - from) * rowBytes));
    }

    /** The same elements under another shape with the same element count. */
    public Tensor reshape(int... newShape) {
        checkOpen();
        TensorScope.checkShape(newShape);
        if (numel(newShape) != numel) {
            throw new IllegalArgumentException("shape: cannot reshape " + describe() + " to " + Arrays.toString(newShape));
        }
        return new Tensor(scope, name, dtype, newShape, segment);
    }

    // ---- host access (CPU tensors) ----

    public float getFloat(long i) {
        MemorySegment s = host(DType.F32, DType.BF16);
        return dtype == DType.F32 ? s.getAtIndex(ValueLayout.JAVA_FLOAT, i) : bf16ToFloat(s.getAtIndex(BF16, i));
    }

    public void setFloat(long i, float v) {
        MemorySegment s = host(DType.F32, DType.BF16);
        if (dtype == DType.F32) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
        } else {
            s.setAtIndex(BF16, i, floatToBf16(v));
        }
    }

    public int getInt(long i) {
        return host(DType.I32).getAtIndex(ValueLayout.JAVA_INT, i);
    }

    public void setInt(long i, int v) {
        host(DType.I32).setAtIndex(ValueLayout.JAVA_INT, i, v);
    }

    public float[] toFloatArray() {
        MemorySegment s = host(DType.F32, DType.BF16);
        if (dtype == DType.F32) {
            return s.toArray(ValueLayout.JAVA_FLOAT);
        }
        float[] out = new float[Math.toIntExact(numel)];
        for (int i = 0; i < out.length; i++) {
            out[i] = bf16ToFloat(s.getAtIndex(BF16, i));
        }
        return out;
    }

    public int[] toIntArray() {
        return host(DType.I32).toArray(ValueLayout.JAVA_INT);
    }

    /** Copies values (length numel) into this tensor; BF16 rounds to nearest even. */
    public void copyFrom(float[] values) {
        MemorySegment s = host(DType.F32, DType.BF16);
        checkLength(values.length);
        if (dtype == DType.F32) {
            MemorySegment.copy(values, 0, s, ValueLayout.JAVA_FLOAT, 0, values.length);
        } else {
            for (int i = 0; i < values.length; i++) {
                s.setAtIndex(BF16, i, floatToBf16(values[i]));
            }
        }
    }

    public void copyFrom(int[] values) {
        MemorySegment s = host(DType.I32);
        checkLength(values.length);
        MemorySegment.copy(values, 0, s, ValueLayout.JAVA_INT, 0, values.length);
    }

    /** Copies all elements of src (same dtype and element count). */
    public void copyFrom(Tensor src) {
        MemorySegment s = host(dtype);
        if (src.dtype != dtype || src.numel != numel) {
            throw new IllegalArgumentException("src: expected " + dtype + " with " + numel + " elements, got " + src.describe());
        }
        MemorySegment.copy(src.host(dtype), 0, s, 0, byteSize());
    }

    public void fill(float v) {
        MemorySegment s = host(DType.F32, DType.BF16);
        if (Float.floatToRawIntBits(v) == 0) {
            s.fill((byte) 0);
            return;
        }
        for (long i = 0; i < numel; i++) {
            setFloat(i, v);
        }
    }

    private MemorySegment host(DType... allowed) {
        checkOpen();
        if (!device().isCpu()) {
            throw new IllegalStateException("tensor " + describe() + ": host access needs a CPU tensor");
        }
        if (!Arrays.asList(allowed).contains(dtype)) {
            throw new IllegalStateException("tensor " + describe() + ": host access as " + Arrays.toString(allowed) + " does not fit its dtype");
        }
        return segment;
    }

    private void checkLength(int length) {
        if (length != numel) {
            throw new IllegalArgumentException("values: expected " + numel + " elements for " + describe() + ", got " + length);
        }
    }

    static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Round to nearest even, as the kernels do; NaN stays a quiet NaN. */
    static short floatToBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        bits += 0x7fff + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    /** "'name' f32[4, 8] on cpu". */
    public String describe() {
        return "'" + name + "' " + dtype + Arrays.toString(shape) + " on " + device();
    }

    @Override
    public String toString() {
        return "Tensor " + describe() + (isOpen() ? "" : " (closed)");
    }
}
