package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.time.Duration;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A replicated expert computes what the unreplicated one does: the same layer with experts 0, 1
 * and 6 copied into free slots (expert 0 twice on the other device, 1 beside its owner, 6 on the
 * other device) gives the same outputs, input gradients and gate gradient; after
 * {@link ExpertReplicas#reduceGradients} the owner's gradient is the unreplicated expert's and the
 * copies' are zero, and {@link ExpertReplicas#copyWeights} gives every copy its owner's weights
 * (in bf16 also the working copies rounded from them).
 */
class ReplicatedExpertTest {
    private static final int HIDDEN = 8;
    private static final int FFN = 8;
    private static final int EXPERTS = 8;
    private static final double TOLERANCE = 1e-6;

    /** What one rank computed; the owners' expert gradients keyed "tp/name", and the largest |gradient| of a copy. */
    private record Pass(float[] y, float[] gradX, float[] gateGrad, Map<String, float[]> expertGrads, float copyGrad) {
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
        MoELayers.FullParameters init = (name, shape) -> random(shape[0] * shape[1], name.hashCode(), 0.5f);
        List<Pass[]> passes = InJvmWorld.run(world, Duration.ofSeconds(60), comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    MoELayer a = MoELayers.create(CpuBackend.get(), cfg, groups, plain, init);
                    MoELayer b = MoELayers.create(CpuBackend.get(), cfg, groups, replicated, init);
                    TensorScope s = TensorScope.shared(CpuBackend.get())) {
                int d = layout.dataIndex(comm.rank());
                int tokens = 9 + 2 * d;
                float[] x = random(tokens * HIDDEN, 100 + d, 1f);
                float[] gy = random(tokens * HIDDEN, 200 + d, 1f);
                ExpertReplicas replicas = new ExpertReplicas(CpuBackend.get(), groups.expert());
                int tp = groups.coordinates().tp();
                boolean counts = groups.coordinates().edp() == 0;
                int epRank = groups.expert().rank();
                Pass[] both = {pass(a, replicas, s, x, gy, tokens, epRank, tp, counts),
                    pass(b, replicas, s, x, gy, tokens, epRank, tp, counts)};
                assertCopiesGetTheirOwnersWeights(b, replicas, groups.expert().rank(), tp);
                return both;
            }
        });
        Map<String, float[]> plainGrads = new TreeMap<>();
        Map<String, float[]> replicaGrads = new TreeMap<>();
        for (Pass[] p : passes) {
            assertEquals(0f, p[1].copyGrad(), "a copy's gradient after it went to its owner");
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

    /**
     * In bf16, copyWeights also gives each copy the working copies its passes read: after owners'
     * masters are changed (their working copies refreshed, as the optimizer's step writes them),
     * every copy's working copy is its new master rounded to bf16, bit for bit.
     */
    @Test
    void bf16CopiesGetTheirOwnersWorkingCopies() {
        MoELayer.Config cfg = MoELayer.Config.builder().hidden(HIDDEN).ffn(FFN).experts(EXPERTS).topK(2)
                .dtype(DType.BF16).build();
        RankLayout layout = new RankLayout(ParallelPlan.parse("ep=2", 2));
        ExpertPlacement replicated = ExpertPlacement.identity(EXPERTS, 2, 2).withSlot(10, 0).withSlot(11, 0)
                .withSlot(4, 1).withSlot(5, 6);
        MoELayers.FullParameters init = (name, shape) -> random(shape[0] * shape[1], name.hashCode(), 0.5f);
        InJvmWorld.run(2, Duration.ofSeconds(60), comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    MoELayer layer = MoELayers.create(CpuBackend.get(), cfg, groups, replicated, init)) {
                ExpertReplicas replicas = new ExpertReplicas(CpuBackend.get(), groups.expert());
                int first = groups.expert().rank() * replicated.slotsPerDevice();
                for (int l = 0; l < replicated.slotsPerDevice(); l++) {
                    int e = replicated.expertAt(first + l);
                    if (e != ExpertPlacement.FREE && replicated.slotsOf(e)[0] == first + l) {
                        for (Parameter w : layer.slotParameters(l)) {
                            w.value().copyFrom(random((int) w.value().numel(), ownerSeed(w.name(), 0), 1f));
                        }
                        layer.refreshSlotWorkingCopies(l);
                    }
                }
                replicas.copyWeights(List.of(layer));
                Map<Tensor, Tensor> working = new IdentityHashMap<>();
                layer.forEachWorkingCopy((master, copy) -> working.put(master.value(), copy));
                int checked = 0;
                for (int l = 0; l < replicated.slotsPerDevice(); l++) {
                    int e = replicated.expertAt(first + l);
                    for (Parameter w : e == ExpertPlacement.FREE ? List.<Parameter>of() : layer.slotParameters(l)) {
                        float[] master = w.value().toFloatArray();
                        float[] copy = working.get(w.value()).toFloatArray();
                        for (int i = 0; i < master.length; i++) {
                            assertEquals(Tensor.floatToBf16(master[i]), Tensor.floatToBf16(copy[i]),
                                    "slot " + (first + l) + " " + w.name() + "[" + i + "]");
                        }
                        checked += replicated.slotsOf(e)[0] == first + l ? 0 : 1;
                    }
                }
                assertEquals(groups.expert().rank() == 0 ? 2 : 6, checked, "copies' working copies checked");
            }
            return null;
        });
    }

    /** Forward, backward, the copies' gradients to their owners (as the trainer does), the reduction. */
    private static Pass pass(MoELayer layer, ExpertReplicas replicas, TensorScope s, float[] x, float[] gy,
            int tokens, int epRank, int tp, boolean counts) {
        float[] y = layer.forward(s.ofFloats("x", x, tokens, HIDDEN)).toFloatArray();
        float[] gradX = layer.backward(s.ofFloats("gy", gy, tokens, HIDDEN), 0.7f, layer.workspace()).toFloatArray();
        replicas.reduceGradients(List.of(layer));
        layer.reduceGradients();
        Map<String, float[]> grads = new TreeMap<>();
        float copyGrad = 0;
        for (int l = 0; l < layer.placement().slotsPerDevice(); l++) {
            int slot = epRank * layer.placement().slotsPerDevice() + l;
            int e = layer.placement().expertAt(slot);
            for (Parameter p : e == ExpertPlacement.FREE ? List.<Parameter>of() : layer.slotParameters(l)) {
                if (layer.placement().slotsOf(e)[0] != slot) {
                    copyGrad = Math.max(copyGrad, maxAbs(p.grad().toFloatArray()));
                } else if (counts) { // one EXPERT_DATA replica: the gradients are summed over them
                    assertFalse(grads.containsKey(tp + "/" + p.name()), "one owner per expert");
                    grads.put(tp + "/" + p.name(), p.grad().toFloatArray());
                }
            }
        }
        return new Pass(y, gradX, layer.router().weight().grad().toFloatArray(), grads, copyGrad);
    }

    /**
     * Sets each owner's weights to values made from its expert and TENSOR rank, clears every copy,
     * copies the weights; then each copy of this rank holds what its owner was given.
     */
    private static void assertCopiesGetTheirOwnersWeights(MoELayer layer, ExpertReplicas replicas,
            int epRank, int tp) {
        ExpertPlacement p = MoELayers.placement(layer);
        int first = epRank * p.slotsPerDevice();
        for (int l = 0; l < p.slotsPerDevice(); l++) {
            int e = p.expertAt(first + l);
            for (Parameter w : e == ExpertPlacement.FREE ? List.<Parameter>of() : layer.slotParameters(l)) {
                boolean owner = p.slotsOf(e)[0] == first + l;
                w.value().copyFrom(owner ? random((int) w.value().numel(), ownerSeed(w.name(), tp), 1f)
                        : new float[(int) w.value().numel()]);
            }
        }
        replicas.copyWeights(List.of(layer));
        int copies = 0;
        for (int l = 0; l < p.slotsPerDevice(); l++) {
            int e = p.expertAt(first + l);
            for (Parameter w : e == ExpertPlacement.FREE ? List.<Parameter>of() : layer.slotParameters(l)) {
                float[] expected = random((int) w.value().numel(), ownerSeed(w.name(), tp), 1f);
                assertClose("ep rank " + epRank + " slot " + l + " " + w.name(), expected, w.value().toFloatArray());
                copies += p.slotsOf(e)[0] == first + l ? 0 : 1;
            }
        }
        // w1 and w2 of each copy: on EP rank 0 expert 1's in slot 4; on EP rank 1 expert 0's in slots 10 and
        // 11 and expert 6's slot 8 (its copy in slot 5 comes first, so slot 5 is the owner)
        assertEquals(epRank == 0 ? 2 : 6, copies, "copied tensors on EP rank " + epRank);
    }

    private static long ownerSeed(String name, int tp) {
        return 31L * name.hashCode() + tp;
    }

    private static float maxAbs(float[] v) {
        float m = 0;
        for (float x : v) {
            m = Math.max(m, Math.abs(x));
        }
        return m;
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
