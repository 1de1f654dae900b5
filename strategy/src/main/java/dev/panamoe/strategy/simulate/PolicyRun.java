package dev.panamoe.strategy.simulate;

/**
 * What one policy did over a replayed trace.
 *
 * @param policy              the policy string as given
 * @param iterationSeconds    predicted time of each iteration: the cost model's step time with the
 *                            policy's placements, plus keeping replicas in sync, plus that
 *                            iteration's migrations (stages migrate in parallel; a stage's layers
 *                            one after another)
 * @param maxOverMeanByLayer  per MoE layer, the busiest device's load over the mean device load,
 *                            averaged over the iterations (from the trace's load, all sources)
 * @param changes             decisions that changed some layer's placement
 * @param movedSlots          physical slots whose expert changed, summed over all changes
 * @param migrationSeconds    one-time change costs, summed
 * @param syncSeconds         per-step replica sync (weight copies and gradient reductions), summed
 * @param decisionNanos       wall time the policy's decide calls took, summed
 */
public record PolicyRun(String policy, double[] iterationSeconds, double[] maxOverMeanByLayer, int changes,
        long movedSlots, double migrationSeconds, double syncSeconds, long decisionNanos) {

    public double meanIterationSeconds() {
        double sum = 0;
        for (double s : iterationSeconds) {
            sum += s;
        }
        return sum / iterationSeconds.length;
    }

    /** Busiest/mean device load averaged over layers and iterations. */
    public double maxOverMeanLoad() {
        double sum = 0;
        for (double r : maxOverMeanByLayer) {
            sum += r;
        }
        return sum / maxOverMeanByLayer.length;
    }

    public double meanDecisionMicros() {
        return decisionNanos / 1e3 / iterationSeconds.length;
    }
}
