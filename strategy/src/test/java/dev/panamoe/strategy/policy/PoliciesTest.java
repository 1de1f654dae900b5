package dev.panamoe.strategy.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.trace.LoadTrace;
import dev.panamoe.strategy.trace.SyntheticTrace;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class PoliciesTest {

    static PolicyContext context(int experts, int devices, int moeLayers) {
        ModelShape model = new ModelShape("test", 50257, 1024, moeLayers, 1536, 16, 1, experts, 2, 3072, false, 6144,
                true);
        return new PolicyContext(new CostModel(model, ClusterSpec.preset("h100-nvlink-ib", devices, 8)),
                new Skeleton(new ParallelPlan(1, 1, devices, 1), 4, 1, Skeleton.DROPLESS));
    }

    @Test
    void parsesPolicyStrings() {
        PolicyContext c = context(32, 8, 2);
        assertEquals("static", Policies.create("static", c).name());
        assertEquals("greedy:10", Policies.create("greedy", c).name());
        assertEquals("greedy:100", Policies.create("Greedy:100", c).name());
        assertEquals("replica:1", Policies.create("replica", c).name());
        assertEquals("smart:3", Policies.create("smart:3", c).name());
        assertInstanceOf(SmartPolicy.class, Policies.createAll("static, smart", c).get(1));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.create("greedy:0", c)).getMessage()
                .contains("greedy:0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.create("lpt", c)).getMessage()
                .contains("unknown \"lpt\""));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Policies.create("static:2", c)).getMessage()
                .contains("no argument"));
    }

    /** Replays a trace through a policy as the simulator does and checks every placement it returns. */
    static int replayAndCheck(PlacementPolicy policy, LoadTrace trace, PolicyContext c) {
        List<ExpertPlacement> initial = policy.initial();
        assertEquals(c.moeLayers(), initial.size());
        LoadTracker tracker = new LoadTracker(c.moeLayers(), c.experts(), 100);
        int changes = 0;
        for (int i = 0; i < trace.iterations(); i++) {
            if (policy.decidesWithinStep()) {
                record(tracker, trace, i);
            }
            Optional<List<ExpertPlacement>> d = policy.decide(i, tracker);
            if (d.isPresent()) {
                changes++;
                assertEquals(c.moeLayers(), d.get().size());
                for (int l = 0; l < d.get().size(); l++) {
                    ExpertPlacement p = d.get().get(l);
                    // same memory budget: the shape of the initial placement, every expert somewhere
                    assertEquals(initial.get(l).slotsPerDevice(), p.slotsPerDevice(), policy.name());
                    assertEquals(c.devices(), p.devices());
                    for (int e = 0; e < c.experts(); e++) {
                        assertTrue(p.copies(e) >= 1, policy.name() + ": expert " + e + " has no slot");
                    }
                }
            }
            if (!policy.decidesWithinStep()) {
                record(tracker, trace, i);
            }
        }
        return changes;
    }

    private static void record(LoadTracker tracker, LoadTrace trace, int i) {
        for (int l = 0; l < tracker.layers(); l++) {
            tracker.record(l, trace.layerLoad(i, l));
        }
    }

    @Test
    void everyPolicyReturnsValidPlacementsWithinItsBudget() {
        PolicyContext c = context(32, 8, 2);
        LoadTrace trace = SyntheticTrace.generate(SyntheticTrace.Config.of(32, 8, 2, 120, 4).withSkew(1.2, 0.05, 0.03));
        for (String spec : List.of("static", "greedy:10", "greedy:100", "replica:2", "smart:2")) {
            PlacementPolicy policy = Policies.create(spec, c);
            int changes = replayAndCheck(policy, trace, c);
            if (spec.equals("static")) {
                assertEquals(0, changes, spec);
            } else if (spec.equals("greedy:100")) {
                assertTrue(changes <= 1, "greedy:100 decides at iteration 100 only, changed " + changes);
            } else {
                assertTrue(changes > 0, spec + " never changed placement on a skewed trace");
            }
        }
    }

    @Test
    void greedyDecidesOnlyEveryPeriod() {
        PolicyContext c = context(16, 4, 1);
        GreedyPolicy greedy = new GreedyPolicy(c, 5);
        LoadTracker tracker = new LoadTracker(1, 16, 10);
        long[] skewed = new long[16];
        for (int e = 0; e < 4; e++) {
            skewed[e] = 100; // all load on device 0's experts
        }
        tracker.record(0, skewed);
        for (int i = 1; i < 5; i++) {
            assertFalse(greedy.decide(i, tracker).isPresent(), "iteration " + i);
        }
        ExpertPlacement moved = greedy.decide(5, tracker).orElseThrow().getFirst();
        assertEquals(100, BalancerTest.max(Balancer.deviceLoads(moved, Balancer.toDouble(skewed))), 1e-9);
    }

    @Test
    void replicaCopiesHotExpertsEveryStepFromThatStepsLoad() {
        PolicyContext c = context(16, 4, 1);
        ReplicaPolicy replica = new ReplicaPolicy(c, 2);
        assertTrue(replica.decidesWithinStep());
        LoadTracker tracker = new LoadTracker(1, 16, 10);
        long[] load = new long[16];
        java.util.Arrays.fill(load, 10);
        load[0] = 400;
        tracker.record(0, load);
        ExpertPlacement p = replica.decide(0, tracker).orElseThrow().getFirst();
        double[] before = Balancer.deviceLoads(replica.initial().getFirst(), Balancer.toDouble(load));
        double[] after = Balancer.deviceLoads(p, Balancer.toDouble(load));
        assertTrue(BalancerTest.max(after) < BalancerTest.max(before) / 2, "max " + BalancerTest.max(after));
        assertEquals(4, p.copies(0), "expert 0 on every device");
        for (int e = 0; e < 16; e++) {
            assertEquals(e, p.expertAt(e / 4 * p.slotsPerDevice() + e % 4), "natives never move");
        }
        load[0] = 10;
        load[5] = 400;
        tracker.record(0, load);
        ExpertPlacement next = replica.decide(1, tracker).orElseThrow().getFirst();
        // expert 0 is now as cold as the rest: at most one small replica left of its four copies
        assertTrue(next.copies(0) <= 2, "last step's hot expert kept " + next.copies(0) + " copies");
        assertEquals(4, next.copies(5));
    }

    @Test
    void smartSlowsDownOnACalmLoadAndKeepsValidPlacements() {
        PolicyContext c = context(32, 8, 1);
        SmartPolicy smart = new SmartPolicy(c, 1);
        LoadTrace calm = SyntheticTrace.generate(SyntheticTrace.Config.of(32, 8, 1, 400, 2).withSkew(1.0, 0, 0));
        int changes = replayAndCheck(smart, calm, c);
        assertEquals(SmartPolicy.MAX_PERIOD, smart.period(0), "period after 400 calm iterations");
        assertTrue(changes >= 1 && changes <= 10, "changes on a calm trace: " + changes);
    }
}
