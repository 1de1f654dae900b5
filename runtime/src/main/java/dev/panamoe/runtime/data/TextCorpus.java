package dev.panamoe.runtime.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Language modelling on any file ({@code --data FILE}) through a {@link Tokenizer}: its bytes
 * (vocabulary 256), or a byte-pair encoding of its UTF-8 text. The file is split once: the first
 * part trains, the last {@code validationFraction} validates (for a BPE, at the start of the
 * character there, each part tokenized on its own). Sequence {@code i} of a split is a window of
 * {@code seqLen + 1} tokens starting at an offset drawn uniformly from (seed, split, i); windows
 * never cross the split, so no validation token is ever trained on.
 */
public final class TextCorpus implements Corpus {

    /** Share of the file held out for validation unless configured otherwise. */
    public static final double DEFAULT_VALIDATION_FRACTION = 0.1;

    /** Files are held in one array. */
    static final long MAX_BYTES = Integer.MAX_VALUE - 8;

    private static final long TRAIN_STREAM = 1;
    private static final long VALIDATION_STREAM = 2;

    private final Path file;
    private final Tokenizer tokenizer;
    private final int fileBytes;
    private final int trainBytes;
    private final int[] train;
    private final int[] validation;
    private final int seqLen;
    private final double validationFraction;
    private final long seed;

    private TextCorpus(Path file, Tokenizer tokenizer, int fileBytes, int trainBytes, int[] train, int[] validation,
            int seqLen, double validationFraction, long seed) {
        this.file = file;
        this.tokenizer = tokenizer;
        this.fileBytes = fileBytes;
        this.trainBytes = trainBytes;
        this.train = train;
        this.validation = validation;
        this.seqLen = seqLen;
        this.validationFraction = validationFraction;
        this.seed = seed;
    }

    /** The file's bytes, holding out the last 10%. */
    public static TextCorpus open(Path file, int seqLen, long seed) {
        return open(file, Tokenizer.of("bytes"), seqLen, DEFAULT_VALIDATION_FRACTION, seed);
    }

    /** The file's bytes: {@link #open(Path, Tokenizer, int, double, long)} with the bytes tokenizer. */
    public static TextCorpus open(Path file, int seqLen, double validationFraction, long seed) {
        return open(file, Tokenizer.of("bytes"), seqLen, validationFraction, seed);
    }

    /**
     * Reads {@code file}, splits it (the first {@code floor(size * (1 - validationFraction))} bytes
     * train, the rest validate) and tokenizes both parts. Each split must hold at least one
     * sequence of {@code seqLen + 1} tokens.
     *
     * @throws IllegalArgumentException naming the file and its size when it is missing, not a
     *         regular file, empty, too large, or too short for a sequence in either split
     */
    public static TextCorpus open(Path file, Tokenizer tokenizer, int seqLen, double validationFraction, long seed) {
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
        if (tokenizer.isBytes() && !holdsWindows(bytes.length, window, validationFraction))
            throw new IllegalArgumentException(String.format(
                    "data file %s has %d bytes: its train split (%d bytes) and validation split (last %s, %d bytes) "
                            + "must each hold one sequence of seqLen + 1 = %d bytes; the file needs at least %d bytes",
                    file, bytes.length, trainSize(bytes.length, validationFraction), percent(validationFraction),
                    bytes.length - trainSize(bytes.length, validationFraction), window,
                    minimumSize(window, validationFraction)));
        int split = tokenizer.splitPoint(bytes, trainSize(bytes.length, validationFraction));
        int[] train = tokenizer.encode(bytes, 0, split);
        int[] validation = tokenizer.encode(bytes, split, bytes.length);
        if (train.length < window || validation.length < window)
            throw new IllegalArgumentException(String.format(
                    "data file %s has %d bytes, %d %s tokens: its train split (%d tokens) and validation split (last %s, "
                            + "%d tokens) must each hold one sequence of seqLen + 1 = %d tokens",
                    file, bytes.length, train.length + validation.length, tokenizer.name(), train.length,
                    percent(validationFraction), validation.length, window));
        return new TextCorpus(file, tokenizer, bytes.length, split, train, validation, seqLen, validationFraction, seed);
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
        return tokenizer.vocabSize();
    }

    @Override
    public int seqLen() {
        return seqLen;
    }

    @Override
    public int sourceCount() {
        return 0;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** Bytes in the train split: the file's first bytes. */
    public int trainBytes() {
        return trainBytes;
    }

    /** Bytes in the validation split: the file's last bytes. */
    public int validationBytes() {
        return fileBytes - trainBytes;
    }

    /** Tokens of the validation split per byte of it: turns nats per token into bits per byte. */
    public double validationTokensPerByte() {
        return (double) validation.length / validationBytes();
    }

    /**
     * The loss, in nats per token, of the best unigram model of the validation split: the entropy
     * of its token frequencies (what a model that ignores context can reach at best).
     */
    public double unigramLoss() {
        int[] counts = new int[tokenizer.vocabSize()];
        for (int t : validation) counts[t]++;
        double entropy = 0;
        for (int c : counts) {
            if (c > 0) {
                double p = (double) c / validation.length;
                entropy -= p * Math.log(p);
            }
        }
        return entropy;
    }

    @Override
    public String describe() {
        String tokens = tokenizer.isBytes() ? "" : String.format(" as %d %s tokens: train %d, validation %d",
                train.length + validation.length, tokenizer.name(), train.length, validation.length);
        return String.format("%s: %s (%d bytes: train %d, validation last %s = %d%s), seq %d, seed %d",
                tokenizer.isBytes() ? "bytes" : "text", file, fileBytes, trainBytes, percent(validationFraction),
                validationBytes(), tokens, seqLen, seed);
    }

    @Override
    public Batch batch(Split split, long position, int batchSize) {
        Batch.checkRequest(position, batchSize, seqLen);
        int len = seqLen + 1;
        int[] source = split == Split.TRAIN ? train : validation;
        long stream = split == Split.TRAIN ? TRAIN_STREAM : VALIDATION_STREAM;
        int[] tokens = new int[batchSize * len];
        for (int b = 0; b < batchSize; b++) {
            Rng rng = new Rng(Rng.seedFor(seed, stream, position + b));
            System.arraycopy(source, rng.nextInt(source.length - len + 1), tokens, b * len, len);
        }
        int[] sources = new int[batchSize];
        Arrays.fill(sources, Batch.NO_SOURCE);
        return new Batch(split, position, batchSize, seqLen, tokens, sources);
    }
}
