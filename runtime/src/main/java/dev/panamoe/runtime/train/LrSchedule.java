package dev.panamoe.runtime.train;

/**
 * Learning rate of each optimizer step {@code s = 1..steps}: linear warm-up to the peak over the
 * first {@code warmup} steps, then cosine decay from the peak to {@code minLr} at the last step.
 * <pre>
 *   s &lt;= warmup:  lr * s / warmup
 *   else:         minLr + (lr - minLr) * (1 + cos(pi * (s - warmup) / (steps - warmup))) / 2
 * </pre>
 * A pure function of the step, so a resumed run gets the same rates as an uninterrupted one.
 */
public record LrSchedule(float lr, float minLr, int warmup, int steps) {

    public LrSchedule {
        if (steps < 1) {
            throw new IllegalArgumentException("steps: must be >= 1, got " + steps);
        }
        if (warmup < 0 || warmup > steps) {
            throw new IllegalArgumentException("warmup: must be in [0, steps=" + steps + "], got " + warmup);
        }
        if (!(lr > 0) || !(minLr >= 0 && minLr <= lr)) {
            throw new IllegalArgumentException("lr, minLr: need 0 <= minLr <= lr and lr > 0, got " + lr + ", " + minLr);
        }
    }

    public static LrSchedule of(TrainingConfig config) {
        return new LrSchedule(config.lr(), config.minLr(), config.warmup(), config.steps());
    }

    /** The rate of step {@code step} (1-based). */
    public float at(int step) {
        if (step < 1 || step > steps) {
            throw new IllegalArgumentException("step: must be in [1, " + steps + "], got " + step);
        }
        if (step <= warmup) {
            return (float) ((double) lr * step / warmup);
        }
        double progress = (double) (step - warmup) / (steps - warmup); // steps > warmup here
        return (float) (minLr + (lr - (double) minLr) * 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
}
