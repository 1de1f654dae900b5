package dev.panamoe.strategy.search;

import dev.panamoe.strategy.cost.ExpertLoad;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.trace.LoadTrace;
import java.util.ArrayList;
import java.util.List;

/** The load distributions a search scores plans under: iterations of a trace, or Zipf samples. */
public final class LoadSamples {
    /** SmartMoE's published traces look like Zipf with exponent about 1. */
    public static final double DEFAULT_EXPONENT = 1.0;

    private LoadSamples() {
    }

    /**
     * Up to count iterations of trace, evenly spaced from the first to the last, each as one
     * sample (per layer and source rank, micro-batches summed). The trace's experts must be
     * the model's.
     */
    public static List<ExpertLoad> fromTrace(LoadTrace trace, ModelShape model, int count) {
        if (trace.experts() != model.experts()) {
            throw new IllegalArgumentException("trace: has " + trace.experts() + " experts, model " + model.name()
                    + " has " + model.experts());
        }
        if (count < 1) {
            throw new IllegalArgumentException("count: must be >= 1, got " + count);
        }
        int n = Math.min(count, trace.iterations());
        List<ExpertLoad> samples = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            int iteration = n == 1 ? 0 : (int) ((long) k * (trace.iterations() - 1) / (n - 1));
            long[][][] counts = new long[trace.layers()][][];
            for (int l = 0; l < trace.layers(); l++) {
                counts[l] = trace.sourceLoad(iteration, l);
            }
            samples.add(new ExpertLoad(counts));
        }
        return samples;
    }

    /**
     * count Zipf samples (seeds seed, seed + 1, ...) for the model's MoE layers from sources
     * source ranks, each sending 64 token slots per expert before rescaling.
     */
    public static List<ExpertLoad> zipf(ModelShape model, int sources, int count, double exponent, long seed) {
        List<ExpertLoad> samples = new ArrayList<>();
        for (int k = 0; k < count; k++) {
            samples.add(ExpertLoad.zipf(model.moeLayers(), sources, model.experts(), 64L * model.experts(), exponent,
                    seed + k));
        }
        return samples;
    }
}
