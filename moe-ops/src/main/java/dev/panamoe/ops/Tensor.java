package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A dense row-major array of one dtype on one device, owned by a {@link TensorScope}. The tensor
 * is valid while its scope is open; any use after the scope is closed throws
 * IllegalStateException naming the tensor. Views ({@link #slice}, {@link #reshape}) share the
 * memory and the scope of their base tensor.
 *
 * <p>The host accessors (get/set/copy/fill) work on every device: on a GPU each is a copy
 * through the backend's stream (a synchronisation), so loops over elements belong on the CPU.
 * Kernels go through a {@link Backend}.
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
        MemorySegment rows = memory().slice(segment, from * rowBytes, (to - from) * rowBytes);
        return new Tensor(scope, name, dtype, viewShape, rows);
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

    // ---- host access: direct on the CPU, through the backend's copies on a device ----

    public float getFloat(long i) {
        floats();
        return read(element(i), dtype.byteSize(), s -> dtype == DType.F32 ? s.get(ValueLayout.JAVA_FLOAT, 0)
                : bf16ToFloat(s.get(BF16, 0)));
    }

    public void setFloat(long i, float v) {
        floats();
        write(element(i), dtype.byteSize(), s -> {
            if (dtype == DType.F32) {
                s.set(ValueLayout.JAVA_FLOAT, 0, v);
            } else {
                s.set(BF16, 0, floatToBf16(v));
            }
        });
    }

    public int getInt(long i) {
        ints();
        return read(element(i), Integer.BYTES, s -> s.get(ValueLayout.JAVA_INT, 0));
    }

    public void setInt(long i, int v) {
        ints();
        write(element(i), Integer.BYTES, s -> s.set(ValueLayout.JAVA_INT, 0, v));
    }

    public float[] toFloatArray() {
        floats();
        return read(0, byteSize(), s -> {
            if (dtype == DType.F32) {
                return s.toArray(ValueLayout.JAVA_FLOAT);
            }
            float[] out = new float[Math.toIntExact(numel)];
            for (int i = 0; i < out.length; i++) {
                out[i] = bf16ToFloat(s.getAtIndex(BF16, i));
            }
            return out;
        });
    }

    public int[] toIntArray() {
        ints();
        return read(0, byteSize(), s -> s.toArray(ValueLayout.JAVA_INT));
    }

    /** Copies values (length numel) into this tensor; BF16 rounds to nearest even. */
    public void copyFrom(float[] values) {
        floats();
        checkLength(values.length);
        write(0, byteSize(), s -> {
            if (dtype == DType.F32) {
                MemorySegment.copy(values, 0, s, ValueLayout.JAVA_FLOAT, 0, values.length);
            } else {
                for (int i = 0; i < values.length; i++) {
                    s.setAtIndex(BF16, i, floatToBf16(values[i]));
                }
            }
        });
    }

    public void copyFrom(int[] values) {
        ints();
        checkLength(values.length);
        write(0, byteSize(), s -> MemorySegment.copy(values, 0, s, ValueLayout.JAVA_INT, 0, values.length));
    }

    /** Copies all elements of src (same dtype and element count), from any device. */
    public void copyFrom(Tensor src) {
        checkOpen();
        if (src == null || src.dtype != dtype || src.numel != numel) {
            throw new IllegalArgumentException("src: expected " + dtype + " with " + numel + " elements, got "
                    + (src == null ? "null" : src.describe()));
        }
        src.checkOpen();
        TensorMemory from = src.scope.memory();
        if (src.device().equals(device()) && from.hostAccessible() == memory().hostAccessible()) {
            memory().copy(src.segment, segment, byteSize());
        } else if (from.hostAccessible()) {
            memory().copyFromHost(src.segment, segment, byteSize());
        } else {
            src.read(0, byteSize(), s -> {
                write(0, byteSize(), d -> MemorySegment.copy(s, 0, d, 0, byteSize()));
                return null;
            });
        }
    }

    public void fill(float v) {
        floats();
        if (Float.floatToRawIntBits(v) == 0) {
            memory().zero(segment, byteSize());
            return;
        }
        write(0, byteSize(), s -> {
            for (long i = 0; i < numel; i++) {
                if (dtype == DType.F32) {
                    s.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
                } else {
                    s.setAtIndex(BF16, i, floatToBf16(v));
                }
            }
        });
    }

    private TensorMemory memory() {
        return scope.memory();
    }

    /** Passes bytes [offset, offset + n) to reader: in place on the host, else a copy in host memory. */
    private <T> T read(long offset, long n, Function<MemorySegment, T> reader) {
        TensorMemory m = memory();
        if (m.hostAccessible()) {
            return reader.apply(segment.asSlice(offset, n));
        }
        try (Arena staging = Arena.ofConfined()) {
            MemorySegment host = staging.allocate(n, TensorMemory.ALIGNMENT);
            m.copyToHost(m.slice(segment, offset, n), host, n);
            return reader.apply(host);
        }
    }

    /** Lets writer fill bytes [offset, offset + n): in place on the host, else in host memory copied over. */
    private void write(long offset, long n, Consumer<MemorySegment> writer) {
        TensorMemory m = memory();
        if (m.hostAccessible()) {
            writer.accept(segment.asSlice(offset, n));
            return;
        }
        try (Arena staging = Arena.ofConfined()) {
            MemorySegment host = staging.allocate(n, TensorMemory.ALIGNMENT);
            writer.accept(host);
            m.copyFromHost(host, m.slice(segment, offset, n), n);
        }
    }

    /** Byte offset of element i; the index is checked here because device memory cannot check it. */
    private long element(long i) {
        if (i < 0 || i >= numel) {
            throw new IndexOutOfBoundsException("index " + i + " is outside [0, " + numel + ") of " + describe());
        }
        return i * dtype.byteSize();
    }

    private void floats() {
        hostAccess(DType.F32, DType.BF16);
    }

    private void ints() {
        hostAccess(DType.I32);
    }

    private void hostAccess(DType... allowed) {
        checkOpen();
        if (!Arrays.asList(allowed).contains(dtype)) {
            throw new IllegalStateException("tensor " + describe() + ": host access as " + Arrays.toString(allowed)
                    + " does not fit its dtype");
        }
    }

    private void checkLength(int length) {
        if (length != numel) {
            throw new IllegalArgumentException("values: expected " + numel + " elements for " + describe() + ", got " + length);
        }
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Round to nearest even, as the kernels do; NaN stays a quiet NaN. */
    public static short floatToBf16(float v) {
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
