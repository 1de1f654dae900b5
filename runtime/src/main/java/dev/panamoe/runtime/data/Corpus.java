package dev.panamoe.runtime.data;

/**
 * Training data for a language model, seen by the trainer as two endless, deterministic streams
 * of sequences (train and validation) over a vocabulary of {@link #vocabSize()} tokens.
 *
 * <p>The <em>position</em> in a stream is the index of a sequence: {@code batch(split, p, b)} holds
 * sequences {@code p .. p+b-1}, each a pure function of (corpus seed, split, index). So the data
 * position a checkpoint saves is one {@code long} ({@link Batch#nextPosition()}), and splitting a
 * batch into micro-batches — {@code batch(s, p, 4)} then {@code batch(s, p+4, 4)} instead of
 * {@code batch(s, p, 8)} — yields the same tokens.
 *
 * <p>Implementations: {@link SyntheticCorpus} (hidden Markov sources with a known loss floor) and
 * {@link TextCorpus} (a file's bytes or BPE tokens).
 */
public interface Corpus {

    /** Number of distinct token ids; every token lies in {@code [0, vocabSize)}. */
    int vocabSize();

    /** Tokens predicted per sequence; each sequence holds {@code seqLen + 1} tokens. */
    int seqLen();

    /**
     * Number of hidden sources whose ids {@link Batch#sources()} reports, or 0 when the corpus has
     * none (then every source id is {@link Batch#NO_SOURCE}).
     */
    int sourceCount();

    /** Sequences {@code position .. position + batchSize - 1} of the given split. */
    Batch batch(Split split, long position, int batchSize);

    /** One line for logs and reports: the kind of corpus and its parameters. */
    String describe();
}
