package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A replicated expert computes what the unreplicated one does: the same layer with experts 0, 1
 * and 6 copied into free slots (expert 0 twice on the other device, 1 beside its owner, 6 on the
 * other device) gives the same outputs, input gradients and gate gradient, and its copies'
 * gradients sum to the unreplicated expert's.
 */
class ReplicatedExpertTest {
    private static final int HIDDEN = 8;
    private static final int FFN = 8;
    private static final int EXPERTS = 8;
    private static final double TOLERANCE = 1e-6;

    /** What one rank computed; expert gradients summed over the local copies, keyed "tp/name". */
    private record Pass(float[] y, float[] gradX, float[] gateGrad, Map<String, float[]> expertGrads) {
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"ep=2,2,GELU", "'dp=2,ep=2',4,SWIGLU", "'tp=2,ep=2',4,GELU"})
    void replicasComputeWhatTheOwnerDoes(String planSpec, int world, Activation act) {
        MoELayer.Config cfg = MoELayer.Config.builder().hidden(HIDDEN).ffn(FFN).experts(EXPERTS).topK(2)
                .activation(act).auxLossCoeff(0.01f).zLossCoeff(0.001f).build();
        ParallelPlan plan = ParallelPlan.parse(planSpec, world);
        RankLayout layout = new RankLayout(plan);
        ExpertPlacement plain = ExpertPlacement.identity(EXPERTS, 2, 2); // slots 4, 5 and 10, 11 free
        ExpertPlacement replicated = plain.withSlot(10, 0).withSlot(11, 0).withSlot(4, 1).withSlot(5, 6);
        DistributedMoELayer.FullParameters init = (name, shape) -> random(shape[0] * shape[1], name.hashCode(), 0.5f);
        List<Pass[]> passes = InJvmWorld.run(world, Duration.ofSeconds(60), comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    DistributedMoELayer a = new DistributedMoELayer(CpuBackend.get(), cfg, groups, plain, init);
                    DistributedMoELayer b = new DistributedMoELayer(CpuBackend.get(), cfg, groups, replicated, init);
                    TensorScope s = TensorScope.shared(CpuBackend.get())) {
                int d = layout.dataIndex(comm.rank());
                int tokens = 9 + 2 * d;
                float[] x = random(tokens * HIDDEN, 100 + d, 1f);
                float[] gy = random(tokens * HIDDEN, 200 + d, 1f);
                int tp = groups.coordinates().tp();
                boolean counts = groups.coordinates().edp() == 0;
                return new Pass[] {pass(a, s, x, gy, tokens, tp, counts), pass(b, s, x, gy, tokens, tp, counts)};
            }
        });
        Map<String, float[]> plainGrads = new TreeMap<>();
        Map<String, float[]> replicaGrads = new TreeMap<>();
        for (Pass[] p : passes) {
            assertClose("y", p[0].y(), p[1].y());
            assertClose("gradX", p[0].gradX(), p[1].gradX());
            assertClose("gate grad", p[0].gateGrad(), p[1].gateGrad());
            p[0].expertGrads().forEach((k, g) -> plainGrads.merge(k, g, ReplicatedExpertTest::sum));
            p[1].expertGrads().forEach((k, g) -> replicaGrads.merge(k, g, ReplicatedExpertTest::sum));
        }
        assertEquals(plainGrads.keySet(), replicaGrads.keySet());
        assertEquals(2 * EXPERTS * plan.tp(), plainGrads.size());
        plainGrads.forEach((k, g) -> assertClose(k + " grad (copies summed)", g, replicaGrads.get(k)));
    }

    private static Pass pass(DistributedMoELayer layer, TensorScope s, float[] x, float[] gy, int tokens, int tp,
            boolean counts) {
        float[] y = layer.forward(s.ofFloats("x", x, tokens, HIDDEN)).toFloatArray();
        float[] gradX = layer.backward(s.ofFloats("gy", gy, tokens, HIDDEN), 0.7f, layer.workspace()).toFloatArray();
        layer.reduceGradients();
        Map<String, float[]> grads = new TreeMap<>();
        if (counts) { // one EXPERT_DATA replica: the gradients are summed over them
            for (Parameter p : layer.expertParameters()) {
                grads.merge(tp + "/" + p.name(), p.grad().toFloatArray(), ReplicatedExpertTest::sum);
            }
        }
        return new Pass(y, gradX, layer.gate().grad().toFloatArray(), grads);
    }

    private static float[] sum(float[] a, float[] b) {
        float[] out = a.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] += b[i];
        }
        return out;
    }

    private static float[] random(int n, long seed, float scale) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (r.nextGaussian() * scale);
        }
        return v;
    }

    /** As close as one device's, and not trivially: the expected values are not all zero. */
    private static void assertClose(String what, float[] expected, float[] actual) {
        boolean allZero = true;
        for (float v : expected) {
            allZero &= v == 0;
        }
        assertFalse(allZero, what + ": all zero");
        TensorAsserts.assertClose(what, expected, actual, TOLERANCE);
    }
}
