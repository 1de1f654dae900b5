package dev.panamoe.ops;

import java.util.Arrays;

/**
 * Argument checks shared by the backends and the operators. Every failure names the argument
 * and the offending value: IllegalArgumentException for bad values, IllegalStateException for
 * a tensor used after its scope was closed.
 */
final class Checks {
    /** Wildcard dimension in an expected shape. */
    static final int ANY = -1;

    private Checks() {
    }

    /** Checks a tensor argument: not null, open, on device, one of the dtypes, of the shape (ANY matches any size). */
    static Tensor tensor(String arg, Tensor t, Device device, DType dtype, int... shape) {
        tensorOfAnyShape(arg, t, device, dtype);
        shape(arg, t, shape);
        return t;
    }

    static Tensor tensorOfAnyShape(String arg, Tensor t, Device device, DType dtype) {
        present(arg, t, device);
        if (t.dtype() != dtype) {
            throw new IllegalArgumentException(arg + ": expected dtype " + dtype + ", got " + t.dtype() + " (tensor " + t.describe() + ")");
        }
        return t;
    }

    /** Like {@link #tensor} for the kernels that take f32 or bf16. */
    static Tensor floatTensor(String arg, Tensor t, Device device, int... shape) {
        present(arg, t, device);
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) {
            throw new IllegalArgumentException(arg + ": expected dtype f32 or bf16, got " + t.dtype() + " (tensor " + t.describe() + ")");
        }
        shape(arg, t, shape);
        return t;
    }

    private static void present(String arg, Tensor t, Device device) {
        if (t == null) {
            throw new IllegalArgumentException(arg + ": must not be null");
        }
        if (!t.isOpen()) {
            throw new IllegalStateException(arg + ": tensor " + t.describe() + " is used after its scope was closed");
        }
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(arg + ": expected a tensor on " + device + ", got " + t.describe());
        }
    }

    /** A shape of ANY per dimension of t: matches t's rank only. */
    static int[] anyShape(Tensor t) {
        int[] any = new int[t == null ? 0 : t.rank()];
        java.util.Arrays.fill(any, ANY);
        return any;
    }

    static void shape(String arg, Tensor t, int... shape) {
        boolean ok = t.rank() == shape.length;
        for (int i = 0; ok && i < shape.length; i++) {
            ok = shape[i] == ANY || shape[i] == t.dim(i);
        }
        if (!ok) {
            throw new IllegalArgumentException(arg + ": expected shape " + format(shape) + ", got " + Arrays.toString(t.shape())
                    + " (tensor '" + t.name() + "')");
        }
    }

    static void sameDtype(String arg, Tensor t, Tensor reference) {
        if (t.dtype() != reference.dtype()) {
            throw new IllegalArgumentException(arg + ": expected dtype " + reference.dtype() + " like '" + reference.name()
                    + "', got " + t.dtype());
        }
    }

    static <T> T notNull(String arg, T value) {
        if (value == null) {
            throw new IllegalArgumentException(arg + ": must not be null");
        }
        return value;
    }

    static int atLeast(String arg, int value, int min) {
        if (value < min) {
            throw new IllegalArgumentException(arg + ": must be >= " + min + ", got " + value);
        }
        return value;
    }

    static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    static String format(int[] shape) {
        StringBuilder s = new StringBuilder("[");
        for (int i = 0; i < shape.length; i++) {
            s.append(i == 0 ? "" : ", ").append(shape[i] == ANY ? "*" : String.valueOf(shape[i]));
        }
        return s.append(']').toString();
    }
}
