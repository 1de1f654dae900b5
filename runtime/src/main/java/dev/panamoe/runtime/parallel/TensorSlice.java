package dev.panamoe.runtime.parallel;

import java.util.Arrays;

/**
 * Which part of a full [rows, cols] parameter a tensor-parallel rank holds (a vector is one row):
 * <ul>
 *   <li>{@link Kind#WHOLE}: all of it (replicated);
 *   <li>{@link Kind#COLUMNS}: the columns are {@code groups} equal blocks, and the rank holds part
 *       {@code part} of {@code parts} of every block — a column-parallel linear layer (groups 1),
 *       or the fused q|k|v projection (groups 3: the same heads of q, k and v);
 *   <li>{@link Kind#ROWS}: rows part / parts — a row-parallel linear layer.
 * </ul>
 */
public record TensorSlice(Kind kind, int groups, int part, int parts) {

    public enum Kind { WHOLE, COLUMNS, ROWS }

    public static final TensorSlice WHOLE = new TensorSlice(Kind.WHOLE, 1, 0, 1);

    public TensorSlice {
        if (groups < 1 || parts < 1 || part < 0 || part >= parts) {
            throw new IllegalArgumentException("groups, part, parts: need groups >= 1 and 0 <= part < parts, got "
                    + groups + ", " + part + ", " + parts);
        }
    }

    public static TensorSlice columns(int part, int parts) {
        return new TensorSlice(Kind.COLUMNS, 1, part, parts);
    }

    /** The heads part / parts of q, k and v in a [C, 3C] weight or [3C] bias. */
    public static TensorSlice qkvColumns(int part, int parts) {
        return new TensorSlice(Kind.COLUMNS, 3, part, parts);
    }

    public static TensorSlice rows(int part, int parts) {
        return new TensorSlice(Kind.ROWS, 1, part, parts);
    }

    /** The shape of this slice of a tensor of fullShape ([rows, cols] or [cols]). */
    public int[] shape(int[] fullShape) {
        int[] s = fullShape.clone();
        switch (kind) {
            case WHOLE -> { }
            case COLUMNS -> s[s.length - 1] = groups * divide(fullShape[s.length - 1], groups * parts, "columns");
            case ROWS -> s[0] = divide(fullShape[0], parts, "rows");
        }
        return s;
    }

    /** This slice's values, row-major, from the full tensor's (row-major, of fullShape). */
    public float[] of(float[] full, int[] fullShape) {
        int cols = fullShape[fullShape.length - 1];
        if (full.length != Arrays.stream(fullShape).asLongStream().reduce(1, (a, b) -> a * b)) {
            throw new IllegalArgumentException("full: " + full.length + " values for shape " + Arrays.toString(fullShape));
        }
        int[] shape = shape(fullShape);
        return switch (kind) {
            case WHOLE -> full.clone();
            case ROWS -> Arrays.copyOfRange(full, part * shape[0] * cols, (part + 1) * shape[0] * cols);
            case COLUMNS -> columnsOf(full, full.length / cols, cols);
        };
    }

    private float[] columnsOf(float[] full, int rows, int cols) {
        int block = cols / groups;
        int width = block / parts;
        float[] out = new float[rows * groups * width];
        int o = 0;
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                int from = r * cols + g * block + part * width;
                System.arraycopy(full, from, out, o, width);
                o += width;
            }
        }
        return out;
    }

    private int divide(int size, int by, String what) {
        if (size % by != 0) {
            throw new IllegalArgumentException(what + ": " + size + " is not divisible by " + by + " (" + this + ")");
        }
        return size / by;
    }
}
