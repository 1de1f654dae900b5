package dev.panamoe.runtime.data;

/**
 * A batch of {@code batchSize} sequences of {@code seqLen + 1} tokens each, row-major in
 * {@code tokens}: row {@code b} is {@code tokens[b*(seqLen+1) .. (b+1)*(seqLen+1))}. Position
 * {@code t} of a row is the input at step {@code t} ({@code t < seqLen}) and the target of step
 * {@code t-1} ({@code t >= 1}).
 *
 * @param split     where the sequences come from
 * @param position  index of the first sequence in its split's stream
 * @param batchSize number of sequences
 * @param seqLen    predicted tokens per sequence
 * @param tokens    {@code batchSize * (seqLen + 1)} token ids, owned by this batch
 * @param sources   hidden source of each sequence, or {@link #NO_SOURCE}; owned by this batch
 */
public record Batch(Split split, long position, int batchSize, int seqLen, int[] tokens, int[] sources) {

    /** The source id of a sequence from a corpus without hidden sources. */
    public static final int NO_SOURCE = -1;

    public Batch {
        if (tokens.length != (long) batchSize * (seqLen + 1))
            throw new IllegalArgumentException("tokens has length " + tokens.length + ", expected batchSize * (seqLen + 1) = "
                    + batchSize + " * " + (seqLen + 1));
        if (sources.length != batchSize)
            throw new IllegalArgumentException("sources has length " + sources.length + ", expected batchSize = " + batchSize);
    }

    /** Checks a batch request against a corpus; the messages name the argument and its value. */
    static void checkRequest(long position, int batchSize, int seqLen) {
        if (position < 0) throw new IllegalArgumentException("position must be >= 0, got " + position);
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be >= 1, got " + batchSize);
        if (position > Long.MAX_VALUE - batchSize)
            throw new IllegalArgumentException("position " + position + " + batchSize " + batchSize + " overflows a long");
        if ((long) batchSize * (seqLen + 1) > Integer.MAX_VALUE - 8)
            throw new IllegalArgumentException("batchSize " + batchSize + " * (seqLen + 1) = " + (long) batchSize * (seqLen + 1)
                    + " tokens do not fit in one array");
    }

    /** The position of the batch that follows this one: what a checkpoint saves. */
    public long nextPosition() {
        return position + batchSize;
    }

    /** Token {@code t} (0..seqLen) of sequence {@code b}. */
    public int token(int b, int t) {
        return tokens[b * (seqLen + 1) + t];
    }

    /** Model inputs, {@code [batchSize, seqLen]} row-major: tokens 0..seqLen-1 of each sequence. */
    public int[] inputs() {
        return window(0);
    }

    /** Next-token targets, {@code [batchSize, seqLen]} row-major: tokens 1..seqLen of each sequence. */
    public int[] targets() {
        return window(1);
    }

    private int[] window(int offset) {
        int[] out = new int[batchSize * seqLen];
        for (int b = 0; b < batchSize; b++)
            System.arraycopy(tokens, b * (seqLen + 1) + offset, out, b * seqLen, seqLen);
        return out;
    }
}
