package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.runtime.golden.Golden;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.parallel.ParallelTraining.Result;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.TrainingConfig;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Hybrid-parallel training equals one device: for each plan, a world of 8 in-JVM ranks trains the
 * tiny model (4 blocks) for 3 optimizer steps — micro-batches, clipping, AdamW — and every step's
 * loss, gradient norm, aux loss and expert counts, the final validation loss, and every rank's
 * parameter shard (every parameter held by some rank) match the single-device
 * {@link dev.panamoe.runtime.train.Trainer}'s within 1e-5 relative (per tensor: the largest
 * difference over the largest magnitude). Each run (one device, and every rank of each plan) also
 * equals its {@link Golden} record bit for bit.
 */
class ParallelEqualityTest {
    static final double TOLERANCE = 1e-5;

    private static final GptMoeConfig MODEL = ParallelTraining.model();
    private static final TrainingConfig CONFIG = ParallelTraining.config();
    private static Result single;

    @BeforeAll
    static void trainOnOneDevice() {
        single = ParallelTraining.single(MODEL, CONFIG);
        Golden.named("plans-single").steps("single", single.steps()).values("single", single.values()).check();
    }

    @ParameterizedTest
    @ValueSource(strings = {"dp8", "ep8", "tp2*ep4", "dp2*ep4", "pp2*dp2*ep2", "pp2*tp2*ep2", "pp4*ep2", "edp2*ep4",
        "pp2*dp2*tp2"})
    void planTrainsLikeOneDevice(String plan) {
        long start = System.nanoTime();
        List<Result> ranks = ParallelTraining.parallel(plan, 8, MODEL, CONFIG);
        double worst = compare(plan, ranks);
        Golden golden = Golden.named("plan-" + plan);
        for (int r = 0; r < ranks.size(); r++) {
            golden.steps("rank" + r, ranks.get(r).steps()).values("rank" + r, ranks.get(r).values());
        }
        golden.check();
        System.out.printf(Locale.ROOT, "plan %-14s max relative difference %.2e in %.1f s%n", plan, worst,
                (System.nanoTime() - start) / 1e9);
    }

    /**
     * A plan of one rank (what {@code train --world 1} runs with a plan or a placement policy) is
     * the same model and trainer as the single device, on a world of one in-JVM rank with the
     * distributed MoE layer and the world's sums: its results agree with the single device's.
     */
    @Test
    void aPlanOfOneRankTrainsLikeOneDevice() {
        compare("dp1", ParallelTraining.parallel("dp1", 1, MODEL, CONFIG));
    }

    /** The largest relative difference of any loss or parameter; asserts each is within the tolerance. */
    static double compare(String plan, List<Result> ranks) {
        double worst = 0;
        List<StepMetrics> expected = single.steps();
        for (int r = 0; r < ranks.size(); r++) {
            List<StepMetrics> got = ranks.get(r).steps();
            assertEquals(expected.size(), got.size(), plan + " rank " + r + ": steps");
            worst = Math.max(worst, close(plan + " rank " + r + " validation loss", expected.getLast().valLoss(),
                    got.getLast().valLoss()));
            for (int s = 0; s < expected.size(); s++) {
                worst = Math.max(worst, close(plan + " rank " + r + " step " + (s + 1) + " loss",
                        expected.get(s).loss(), got.get(s).loss()));
                worst = Math.max(worst, close(plan + " rank " + r + " step " + (s + 1) + " gradient norm",
                        expected.get(s).gradNorm(), got.get(s).gradNorm()));
                worst = Math.max(worst, close(plan + " rank " + r + " step " + (s + 1) + " aux loss",
                        expected.get(s).auxLoss(), got.get(s).auxLoss()));
                assertArrayEquals(expected.get(s).expertCounts(), got.get(s).expertCounts(),
                        plan + " rank " + r + " step " + (s + 1) + ": tokens routed to each expert");
            }
        }
        Set<String> covered = new HashSet<>();
        for (int r = 0; r < ranks.size(); r++) {
            Result rank = ranks.get(r);
            for (Map.Entry<String, float[]> e : rank.values().entrySet()) {
                String name = e.getKey();
                float[] full = single.values().get(name);
                assertTrue(full != null, plan + " rank " + r + ": parameter " + name + " is not the model's");
                float[] want = rank.slices().get(name).of(full, rank.fullShapes().get(name));
                worst = Math.max(worst, TensorAsserts.assertClose(plan + " rank " + r + " " + name, want, e.getValue(), TOLERANCE));
                covered.add(name);
            }
        }
        assertEquals(single.values().keySet(), covered, plan + ": the ranks together hold every parameter");
        return worst;
    }

    private static double close(String what, double expected, double actual) {
        double rel = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-30);
        assertTrue(rel <= TOLERANCE, what + ": expected " + expected + ", got " + actual + " (relative " + rel + ")");
        return rel;
    }
}
