package dev.panamoe.runtime.report;

import dev.panamoe.runtime.data.LossFloor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Everything {@link TrainingReport} shows, as plain data, so the report needs no model classes.
 *
 * @param title              page title, e.g. "tiny on synthetic corpus"
 * @param config             run configuration shown in the summary table, in iteration order
 * @param steps              per-step metrics in step order (at least one); every step has the same
 *                           number of MoE layers and experts per layer
 * @param unigramLoss        loss of the best unigram model on the data, or {@code NaN} if unknown
 * @param lossFloor          the data's loss floor (synthetic corpus), or {@code NaN} if unknown
 * @param expertSourceCounts {@code [moeLayer][expert][source]}: token-to-expert assignments by the
 *                           source of the token's sequence, or {@code null} when the data has no sources
 * @param operatorTimes      per-operator totals from {@link OperatorTimer#entries()}, or empty
 */
public record ReportData(String title, Map<String, String> config, List<StepMetrics> steps, double unigramLoss,
                         double lossFloor, long[][][] expertSourceCounts, List<OperatorTimer.Entry> operatorTimes) {

    public ReportData {
        Objects.requireNonNull(title, "title");
        config = Collections.unmodifiableMap(new LinkedHashMap<>(Objects.requireNonNull(config, "config")));
        steps = List.copyOf(Objects.requireNonNull(steps, "steps"));
        operatorTimes = List.copyOf(Objects.requireNonNull(operatorTimes, "operatorTimes"));
        if (steps.isEmpty())
            throw new IllegalArgumentException("steps must not be empty");
        checkSameShape(steps);
        if (expertSourceCounts != null)
            checkSourceCounts(expertSourceCounts, steps.getFirst().expertCounts());
    }

    /** Number of MoE layers. */
    public int moeLayers() {
        return steps.getFirst().moeLayers();
    }

    /** The last evaluated step, or {@code null} if none was. */
    public StepMetrics lastEvaluated() {
        for (StepMetrics m : steps.reversed())
            if (m.evaluated())
                return m;
        return null;
    }

    /**
     * Share of the gap between the unigram loss and the floor closed by the final validation loss
     * (LossFloor.gapClosed); {@code NaN} when the floor, the unigram loss or an evaluation is missing.
     */
    public double gapClosed() {
        StepMetrics last = lastEvaluated();
        if (last == null || Double.isNaN(unigramLoss) || Double.isNaN(lossFloor))
            return Double.NaN;
        return LossFloor.gapClosed(unigramLoss, lossFloor, last.valLoss());
    }

    private static void checkSourceCounts(long[][][] sourceCounts, int[][] expertCounts) {
        if (sourceCounts.length != expertCounts.length)
            throw new IllegalArgumentException("expertSourceCounts has " + sourceCounts.length
                    + " MoE layers, the metrics " + expertCounts.length);
        for (int layer = 0; layer < sourceCounts.length; layer++)
            if (sourceCounts[layer] == null || sourceCounts[layer].length != expertCounts[layer].length)
                throw new IllegalArgumentException("expertSourceCounts[" + layer + "] must have "
                        + expertCounts[layer].length + " experts, got "
                        + (sourceCounts[layer] == null ? "null" : sourceCounts[layer].length));
    }

    private static void checkSameShape(List<StepMetrics> steps) {
        int[][] first = steps.getFirst().expertCounts();
        for (StepMetrics m : steps) {
            int[][] counts = m.expertCounts();
            if (counts.length != first.length)
                throw new IllegalArgumentException("step " + m.step() + " has " + counts.length
                        + " MoE layers, step " + steps.getFirst().step() + " has " + first.length);
            for (int layer = 0; layer < counts.length; layer++)
                if (counts[layer].length != first[layer].length)
                    throw new IllegalArgumentException("step " + m.step() + " MoE layer " + layer + " has "
                            + counts[layer].length + " experts, step " + steps.getFirst().step() + " has " + first[layer].length);
        }
    }
}
