package dev.panamoe.runtime.data;

/**
 * The loss floor of a synthetic corpus: the expected per-token cross-entropy, in nats, of the true
 * predictive distribution of each next token given its prefix, for a predictor that knows every
 * source's chain but not which source produced the sequence. No model can do better on average.
 *
 * <p>Averaged as the trainer averages its loss: over the {@code seqLen} predicted positions of a
 * sequence (position {@code t} predicts token {@code t+1} from tokens {@code 0..t}), then over
 * sequences. It is a Monte-Carlo estimate over {@code sequences} generated sequences; the
 * standard errors are those of the mean over these independent sequences.
 *
 * @param nats              the floor: mean over sequences of the per-sequence mean loss
 * @param stderr            standard error of {@code nats}
 * @param sequences         number of sequences averaged
 * @param perPosition       the floor at each predicted position {@code 0..seqLen-1}; owned by this record
 * @param perPositionStderr standard error of each {@code perPosition} entry; owned by this record
 */
public record LossFloor(double nats, double stderr, int sequences, double[] perPosition, double[] perPositionStderr) {

    /**
     * The share of the gap between the best unigram model and the floor that a model with the
     * given validation loss closes: {@code (unigram - val) / (unigram - floor)}; 1 at the floor,
     * 0 at the unigram loss, negative when worse than unigram.
     */
    public double gapClosed(double unigramLoss, double validationLoss) {
        if (!(unigramLoss > nats))
            throw new IllegalArgumentException("unigramLoss " + unigramLoss + " must exceed the floor " + nats);
        return gapClosed(unigramLoss, nats, validationLoss);
    }

    /** Share of the gap between the unigram loss and the floor that a validation loss closes. */
    public static double gapClosed(double unigramLoss, double floor, double validationLoss) {
        return (unigramLoss - validationLoss) / (unigramLoss - floor);
    }
}
