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
        float[] slice = new float[Math.toIntExact(numel(shape(fullShape)))];
        copy(full, fullShape, slice, true);
        return slice;
    }

    /** Writes this slice's values (row-major, as {@link #of} gives them) into their place in the full tensor. */
    public void place(float[] slice, float[] full, int[] fullShape) {
        long expected = numel(shape(fullShape));
        if (slice.length != expected) {
            throw new IllegalArgumentException("slice: " + slice.length + " values, expected " + expected + " for "
                    + this + " of " + Arrays.toString(fullShape));
        }
        copy(full, fullShape, slice, false);
    }

    /**
     * Copies between the slice and its place in the full tensor: rows [firstRow, firstRow + rows),
     * in each of them one run of width values per column group.
     */
    private void copy(float[] full, int[] fullShape, float[] slice, boolean toSlice) {
        if (full.length != numel(fullShape)) {
            throw new IllegalArgumentException("full: " + full.length + " values for shape " + Arrays.toString(fullShape));
        }
        int[] shape = shape(fullShape);
        int cols = fullShape[fullShape.length - 1];
        int rows = full.length / Math.max(1, cols);
        int firstRow = kind == Kind.ROWS ? part * (rows / parts) : 0;
        int sliceRows = kind == Kind.ROWS ? rows / parts : rows;
        int block = cols / groups;
        int width = shape[shape.length - 1] / groups;
        int offset = kind == Kind.COLUMNS ? part * width : 0;
        int s = 0;
        for (int r = firstRow; r < firstRow + sliceRows; r++) {
            for (int g = 0; g < groups; g++) {
                int f = r * cols + g * block + offset;
                if (toSlice) {
                    System.arraycopy(full, f, slice, s, width);
                } else {
                    System.arraycopy(slice, s, full, f, width);
                }
                s += width;
            }
        }
    }

    private static long numel(int[] shape) {
        return Arrays.stream(shape).asLongStream().reduce(1, (a, b) -> a * b);
    }

    private int divide(int size, int by, String what) {
        if (size % by != 0) {
            throw new IllegalArgumentException(what + ": " + size + " is not divisible by " + by + " (" + this + ")");
        }
        return size / by;
    }
}
