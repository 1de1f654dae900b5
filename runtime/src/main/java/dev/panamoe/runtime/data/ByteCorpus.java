package dev.panamoe.runtime.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Byte-level language modelling on any file ({@code --data FILE}): the vocabulary is the 256 byte
 * values. The file is split once: the first part trains, the last {@code validationFraction}
 * validates. Sequence {@code i} of a split is a window of {@code seqLen + 1} bytes starting at an
 * offset drawn uniformly from (seed, split, i); windows never cross the split, so no validation
 * byte is ever trained on.
 */
public final class ByteCorpus implements Corpus {

    /** Share of the file held out for validation unless configured otherwise. */
    public static final double DEFAULT_VALIDATION_FRACTION = 0.1;

    /** Files are held in one array. */
    static final long MAX_BYTES = Integer.MAX_VALUE - 8;

    private static final long TRAIN_STREAM = 1;
    private static final long VALIDATION_STREAM = 2;

    private final Path file;
    private final byte[] bytes;
    private final int trainBytes;
    private final int seqLen;
    private final double validationFraction;
    private final long seed;

    private ByteCorpus(Path file, byte[] bytes, int trainBytes, int seqLen, double validationFraction, long seed) {
        this.file = file;
        this.bytes = bytes;
        this.trainBytes = trainBytes;
        this.seqLen = seqLen;
        this.validationFraction = validationFraction;
        this.seed = seed;
    }

    /** {@link #open(Path, int, double, long)} holding out the last 10%. */
    public static ByteCorpus open(Path file, int seqLen, long seed) {
        return open(file, seqLen, DEFAULT_VALIDATION_FRACTION, seed);
    }

    /**
     * Reads {@code file} and splits it: the first {@code floor(size * (1 - validationFraction))}
     * bytes train, the rest validate. Each split must hold at least one sequence of
     * {@code seqLen + 1} bytes.
     *
     * @throws IllegalArgumentException naming the file and its size when it is missing, not a
     *         regular file, empty, too large, or too short for a sequence in either split
     */
    public static ByteCorpus open(Path file, int seqLen, double validationFraction, long seed) {
        if (seqLen < 1) throw new IllegalArgumentException("seqLen must be >= 1, got " + seqLen);
        if (!(validationFraction > 0 && validationFraction < 1))
            throw new IllegalArgumentException("validationFraction must be in (0, 1), got " + validationFraction);
        if (!Files.exists(file)) throw new IllegalArgumentException("data file " + file + " does not exist");
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("data file " + file + " is not a regular file");
        long size = sizeOf(file);
        if (size == 0) throw new IllegalArgumentException("data file " + file + " is empty (0 bytes)");
        if (size > MAX_BYTES)
            throw new IllegalArgumentException("data file " + file + " has " + size + " bytes, more than the " + MAX_BYTES + " supported");
        byte[] bytes = readAll(file);
        int window = seqLen + 1;
        if (!holdsWindows(bytes.length, window, validationFraction))
            throw new IllegalArgumentException(String.format(
                    "data file %s has %d bytes: its train split (%d bytes) and validation split (last %s, %d bytes) "
                            + "must each hold one sequence of seqLen + 1 = %d bytes; the file needs at least %d bytes",
                    file, bytes.length, trainSize(bytes.length, validationFraction), percent(validationFraction),
                    bytes.length - trainSize(bytes.length, validationFraction), window, minimumSize(window, validationFraction)));
        return new ByteCorpus(file, bytes, trainSize(bytes.length, validationFraction), seqLen, validationFraction, seed);
    }

    private static int trainSize(int size, double validationFraction) {
        return (int) Math.floor(size * (1 - validationFraction));
    }

    private static boolean holdsWindows(int size, int window, double validationFraction) {
        int train = trainSize(size, validationFraction);
        return train >= window && size - train >= window;
    }

    /** The smallest file size whose two splits both hold a window. */
    private static long minimumSize(int window, double validationFraction) {
        long size = (long) Math.max(window / (1 - validationFraction), (window - 1) / validationFraction);
        while (size <= MAX_BYTES && !holdsWindows((int) size, window, validationFraction)) size++;
        return size;
    }

    private static String percent(double fraction) {
        return String.format("%.4g%%", fraction * 100).replaceAll("\\.?0+%$", "%");
    }

    private static long sizeOf(Path file) {
        try {
            return Files.size(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the size of data file " + file + ": " + e.getMessage(), e);
        }
    }

    private static byte[] readAll(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read data file " + file + ": " + e.getMessage(), e);
        }
    }

    @Override
    public int vocabSize() {
        return 256;
    }

    @Override
    public int seqLen() {
        return seqLen;
    }

    @Override
    public int sourceCount() {
        return 0;
    }

    /** Bytes in the train split: the file's first bytes. */
    public int trainBytes() {
        return trainBytes;
    }

    /** Bytes in the validation split: the file's last bytes. */
    public int validationBytes() {
        return bytes.length - trainBytes;
    }

    @Override
    public String describe() {
        return String.format("bytes: %s (%d bytes: train %d, validation last %s = %d), seq %d, seed %d", file, bytes.length,
                trainBytes, percent(validationFraction), validationBytes(), seqLen, seed);
    }

    @Override
    public Batch batch(Split split, long position, int batchSize) {
        Batch.checkRequest(position, batchSize, seqLen);
        int len = seqLen + 1;
        int start = split == Split.TRAIN ? 0 : trainBytes;
        int size = split == Split.TRAIN ? trainBytes : validationBytes();
        long stream = split == Split.TRAIN ? TRAIN_STREAM : VALIDATION_STREAM;
        int[] tokens = new int[batchSize * len];
        for (int b = 0; b < batchSize; b++) {
            Rng rng = new Rng(Rng.seedFor(seed, stream, position + b));
            int offset = start + rng.nextInt(size - len + 1);
            for (int t = 0; t < len; t++) tokens[b * len + t] = bytes[offset + t] & 0xff;
        }
        int[] sources = new int[batchSize];
        Arrays.fill(sources, Batch.NO_SOURCE);
        return new Batch(split, position, batchSize, seqLen, tokens, sources);
    }
}
