package dev.panamoe.strategy.cost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ModelShape;
import dev.panamoe.strategy.plan.ParallelPlan;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

class CostModelTest {
    /** SmartMoE's GPT-MoE 16 x 2560, 16 experts top-2. */
    static final ModelShape GPT = new ModelShape("gpt-moe-l16-h2560", 50257, 1024, 16, 2560, 16, 1, 16, 2, 5120,
            false, 10240, true);

    static CostModel h100(int gpus, int perNode) {
        return new CostModel(GPT, ClusterSpec.preset("h100-nvlink-ib", gpus, perNode));
    }

    @Test
    void moreSkewIsSlower() {
        CostModel cost = h100(16, 8);
        ParallelPlan plan = ParallelPlan.parse("ep=16", 16);
        ExpertPlacement identity = ExpertPlacement.identity(16, 16, 0);
        double previous = 0;
        for (double exponent : new double[] {0, 0.6, 1.0, 1.5}) {
            ExpertLoad load = exponent == 0 ? ExpertLoad.uniform(1, 16, 16, 2048)
                    : ExpertLoad.zipf(1, 16, 16, 2048, exponent, 7);
            double layer = cost.moeLayerSeconds(plan, identity, load.forGroup(0, 0, 16, 2048));
            double step = cost.step(new Skeleton(plan, 1, 4, Skeleton.DROPLESS), null, load).seconds();
            assertTrue(layer > previous, "exponent " + exponent + ": " + layer + " <= " + previous);
            previous = layer;
            if (exponent > 0) {
                double uniformStep = cost.step(new Skeleton(plan, 1, 4, Skeleton.DROPLESS), null,
                        ExpertLoad.uniform(1, 16, 16, 2048)).seconds();
                assertTrue(step > uniformStep, "step at exponent " + exponent);
            }
        }
    }

    @Test
    void busiestDeviceBoundsTheLayerAndReplicaRelievesIt() {
        CostModel cost = h100(8, 8);
        ParallelPlan plan = ParallelPlan.parse("ep=8,edp=1", 8);
        long[][] load = new long[8][16];
        for (long[] row : load) {
            java.util.Arrays.fill(row, 100);
            row[0] = 1500; // expert 0 (device 0) is hot
        }
        ExpertPlacement base = ExpertPlacement.identity(16, 8, 1);
        CostModel.MoeLayerCost c = cost.moeLayer(plan, 0, base, load);
        assertEquals(8 * (1500 + 100), c.busiestDeviceRows(), 1e-9);
        // a replica of expert 0 on device 7 takes half its rows
        ExpertPlacement replicated = base.withSlot(7 * 3 + 2, 0);
        CostModel.MoeLayerCost r = cost.moeLayer(plan, 0, replicated, load);
        assertEquals(8 * (750 + 100 + 100), r.busiestDeviceRows(), 1e-9); // device 7 is now the busiest
        assertTrue(r.computeSeconds() < c.computeSeconds());
        assertEquals(cost.moeLayerSeconds(plan, replicated, load), r.seconds(), 0);
    }

    @Test
    void moeLayerMatchesAPlainReference() {
        java.util.SplittableRandom rng = new java.util.SplittableRandom(42);
        int[][] shapes = {{8, 8, 8, 1}, {16, 4, 4, 2}, {32, 8, 16, 1}, {8, 2, 8, 2}, {64, 8, 8, 1}, {16, 1, 16, 1}};
        for (int[] shape : shapes) {
            int experts = shape[0];
            int perNode = shape[1];
            int ep = shape[2];
            int tp = shape[3];
            ModelShape model = new ModelShape("m", 64, 128, 2, 256, 8, 1, experts, 2, 512, rng.nextBoolean(), 1024,
                    true);
            int lanes = 2;
            CostModel cost = new CostModel(model, ClusterSpec.preset("h100-nvlink-ib", ep * tp * lanes,
                    Math.min(perNode, ep * tp * lanes)));
            ParallelPlan plan = new ParallelPlan(1, tp, ep, lanes);
            // a random placement with replicas and free slots
            ExpertPlacement placement = ExpertPlacement.identity(experts, ep, 2);
            for (int k = 0; k < ep; k++) {
                int p = rng.nextInt(placement.physicalSlots());
                if (placement.expertAt(p) == ExpertPlacement.FREE) {
                    placement = placement.withSlot(p, rng.nextInt(experts));
                }
            }
            long[][] load = new long[ep][experts];
            for (long[] row : load) {
                for (int e = 0; e < experts; e++) {
                    row[e] = rng.nextInt(4) == 0 ? 0 : rng.nextLong(5000);
                }
            }
            ExpertPlacement identity = ExpertPlacement.identity(experts, ep, 2);
            for (int lane = 0; lane < lanes; lane++) {
                // one pricer, several placements: each priced as if alone
                CostModel.LayerPricer pricer = cost.layerPricer(plan, lane, load);
                for (ExpertPlacement pl : List.of(placement, identity, placement)) {
                    CostModel.MoeLayerCost got = pricer.cost(pl);
                    double[] want = reference(cost, plan, lane, pl, load);
                    String where = java.util.Arrays.toString(shape) + " lane " + lane;
                    assertEquals(want[0], got.computeSeconds(), 1e-12 * want[0], where);
                    assertEquals(want[1], got.allToAllSeconds(), 1e-9 * want[1], where);
                    assertEquals(want[2], got.busiestDeviceRows(), 1e-9 * want[2], where);
                    assertEquals(got, cost.moeLayer(plan, lane, pl, load), where);
                }
            }
        }
    }

    /** The MoE layer priced the direct way: every (source, slot) pair on its link. */
    private static double[] reference(CostModel cost, ParallelPlan plan, int lane, ExpertPlacement placement,
            long[][] load) {
        ClusterSpec c = cost.cluster();
        ModelShape m = cost.model();
        int ep = plan.ep();
        double[][] sendRecv = new double[ep][4]; // send intra, recv intra, send inter, recv inter
        double[] rows = new double[ep];
        double[] compute = new double[ep];
        double params = (double) m.expertParameters() / plan.tp();
        for (int p = 0; p < placement.physicalSlots(); p++) {
            int e = placement.expertAt(p);
            if (e == ExpertPlacement.FREE) {
                continue;
            }
            int d = placement.deviceOf(p);
            double slotRows = 0;
            for (int s = 0; s < ep; s++) {
                double v = (double) load[s][e] / placement.copies(e);
                slotRows += v;
                if (s != d) {
                    boolean intra = c.sameNode(plan.tp() * (s + ep * lane), plan.tp() * (d + ep * lane));
                    sendRecv[s][intra ? 0 : 2] += v;
                    sendRecv[d][intra ? 1 : 3] += v;
                }
            }
            rows[d] += slotRows;
            if (slotRows > 0) {
                compute[d] += Math.max(6 * slotRows * params / c.deviceFlops(),
                        3 * params * c.elementBytes() / c.memoryBandwidth());
            }
        }
        double busiest = 0;
        double a2a = 0;
        double maxRows = 0;
        for (int d = 0; d < ep; d++) {
            int intraPeers = 0;
            for (int s = 0; s < ep; s++) {
                intraPeers += s != d && c.sameNode(plan.tp() * (s + ep * lane), plan.tp() * (d + ep * lane)) ? 1 : 0;
            }
            double bytes = (double) m.hidden() * c.elementBytes();
            double t = Math.max(Math.max(sendRecv[d][0], sendRecv[d][1]) * bytes / c.intraBandwidth(),
                    Math.max(sendRecv[d][2], sendRecv[d][3]) * bytes / c.interBandwidth())
                    + intraPeers * c.intraLatency() + (ep - 1 - intraPeers) * c.interLatency();
            a2a = Math.max(a2a, t);
            busiest = Math.max(busiest, compute[d]);
            maxRows = Math.max(maxRows, rows[d]);
        }
        return new double[] {busiest, 4 * a2a, maxRows};
    }

    @Test
    void interNodeAllToAllCostsMoreThanIntraNode() {
        ParallelPlan plan = ParallelPlan.parse("ep=8", 8);
        ExpertPlacement identity = ExpertPlacement.identity(16, 8, 0);
        long[][] load = ExpertLoad.uniform(1, 8, 16, 2048).forGroup(0, 0, 8, 2048);
        double oneNode = h100(8, 8).moeLayer(plan, 0, identity, load).allToAllSeconds();
        double twoNodes = h100(8, 4).moeLayer(plan, 0, identity, load).allToAllSeconds();
        double eightNodes = h100(8, 1).moeLayer(plan, 0, identity, load).allToAllSeconds();
        assertTrue(twoNodes > 2 * oneNode, twoNodes + " vs " + oneNode);
        assertTrue(eightNodes > twoNodes, eightNodes + " vs " + twoNodes);
        // compute does not depend on the topology
        assertEquals(h100(8, 8).moeLayer(plan, 0, identity, load).computeSeconds(),
                h100(8, 1).moeLayer(plan, 0, identity, load).computeSeconds(), 0);
    }

    @Test
    void pipelineBubbleIsPpMinusOneOverMPlusPpMinusOne() {
        // tiny vocabulary: stages are equal up to the boundary sends
        ModelShape model = new ModelShape("even", 8, 256, 8, 512, 8, 1, 8, 2, 1024, false, 2048, true);
        // free communication: only compute, so the bubble is the schedule's alone
        CostModel cost = new CostModel(model,
                ClusterSpec.parse("h100-nvlink-ib:intra-lat=0,inter-lat=0,intra-bw=1e18,inter-bw=1e18", 8, 8));
        ExpertLoad load = ExpertLoad.uniform(1, 1, 8, 512);
        for (int pp : new int[] {2, 4, 8}) {
            for (int m : new int[] {1, 4, 16}) {
                ParallelPlan plan = new ParallelPlan(pp, 1, 1, 8 / pp);
                StepEstimate e = cost.step(new Skeleton(plan, 1, m, Skeleton.DROPLESS), null, load);
                double pipeline = e.seconds() - e.denseGradSync() - e.expertGradSync();
                double expected = (pp - 1.0) / (m + pp - 1.0);
                assertEquals(expected, e.pipelineBubble() / pipeline, 0.02 * expected, "pp=" + pp + " m=" + m);
            }
        }
        StepEstimate single = cost.step(new Skeleton(new ParallelPlan(1, 1, 1, 8), 1, 4, Skeleton.DROPLESS), null,
                load);
        assertEquals(0, single.pipelineBubble(), 1e-15);
    }

    @Test
    void termsAddUpToTheStep() {
        CostModel cost = h100(64, 8);
        ExpertLoad load = ExpertLoad.zipf(16, 16, 16, 1024, 1.0, 3);
        for (String p : List.of("pp=4,ep=4,edp=4", "pp=2,tp=2,ep=16", "tp=4,ep=16")) {
            ParallelPlan plan = ParallelPlan.parse(p, 64);
            StepEstimate e = cost.step(new Skeleton(plan, 1, 8, 1.25), null, load);
            double sum = e.terms().values().stream().mapToDouble(Double::doubleValue).sum();
            assertEquals(e.seconds(), sum, 1e-12 * e.seconds(), p);
            assertTrue(e.terms().values().stream().allMatch(v -> v >= 0), p + " " + e.terms());
        }
    }

    @Test
    void capacityDropsSlotsAndShortensTheMoeLayer() {
        CostModel cost = h100(16, 8);
        ParallelPlan plan = ParallelPlan.parse("ep=16", 16);
        ExpertLoad load = ExpertLoad.zipf(4, 16, 16, 4096, 1.2, 5);
        StepEstimate dropless = cost.step(new Skeleton(plan, 1, 4, Skeleton.DROPLESS), null, load);
        StepEstimate capped = cost.step(new Skeleton(plan, 1, 4, 1.0), null, load);
        assertEquals(0, dropless.droppedFraction(), 0);
        assertTrue(capped.droppedFraction() > 0.1, "dropped " + capped.droppedFraction());
        assertTrue(capped.expertCompute() < dropless.expertCompute());
        assertTrue(capped.allToAll() < dropless.allToAll());
    }

    @Test
    void memoryInfeasibilityIsDetected() {
        ParallelPlan dataParallel = ParallelPlan.parse("dp=16", 16);
        Skeleton s = new Skeleton(dataParallel, 1, 2, Skeleton.DROPLESS);
        ExpertLoad load = ExpertLoad.uniform(1, 16, 16, 2048);
        // every device holds all 16 experts of 16 layers: 16 * 16 * 26.2M parameters * 16 bytes > 100 GiB
        StepEstimate e = h100(16, 8).step(s, null, load);
        assertFalse(e.feasible());
        assertTrue(e.memory().total() > 90.0 * (1L << 30), "" + e.memory().total());
        // sharding the experts 16 ways fits
        StepEstimate sharded = h100(16, 8).step(new Skeleton(ParallelPlan.parse("ep=16", 16), 1, 2,
                Skeleton.DROPLESS), null, load);
        assertTrue(sharded.feasible(), "" + sharded.memory());
        // the optimizer state is 8 bytes per parameter, plus the f32 master copy with bf16 elements
        assertEquals(12.0 / 2, e.memory().optimizer() / e.memory().parameters(), 1e-12);
        // 1F1B keeps up to pp micro-batches in flight on the first stage
        ParallelPlan pp4 = ParallelPlan.parse("pp=4,ep=4", 16);
        StepEstimate.Memory one = h100(16, 8).memory(new Skeleton(pp4, 2, 1, 1.0), 4, 4096);
        StepEstimate.Memory four = h100(16, 8).memory(new Skeleton(pp4, 2, 4, 1.0), 4, 4096);
        StepEstimate.Memory eight = h100(16, 8).memory(new Skeleton(pp4, 2, 8, 1.0), 4, 4096);
        assertTrue(four.activations() > 3 * one.activations(), four + " vs " + one);
        assertEquals(four.activations(), eight.activations(), 0);
        // and the busiest device's expert rows are part of it
        assertTrue(h100(16, 8).memory(new Skeleton(pp4, 2, 4, 1.0), 4, 8192).activations() > four.activations());
    }

    @Test
    void migrationCostIsProportionalToMovedExperts() {
        CostModel cost = h100(8, 8);
        ParallelPlan plan = ParallelPlan.parse("ep=8", 8);
        ExpertPlacement from = ExpertPlacement.identity(16, 8, 0);
        double perExpert = cost.expertStateBytes(plan);
        assertEquals(GPT.expertParameters() * 16.0, perExpert, 0); // 2 + 2 + 8 + 4 bytes per parameter
        double previousSeconds = 0;
        for (int swaps = 1; swaps <= 4; swaps++) {
            int[] table = from.slotTable();
            for (int k = 0; k < swaps; k++) {
                // swap device k's first expert with device k + 4's first expert
                int a = k * 2;
                int b = (k + 4) * 2;
                int t = table[a];
                table[a] = table[b];
                table[b] = t;
            }
            ExpertPlacement to = ExpertPlacement.of(16, 8, 2, table);
            MigrationCost m = cost.migrationCost(plan, from, to);
            assertEquals(2 * swaps, m.movedExperts());
            assertEquals(2 * swaps * perExpert, m.totalBytes(), 1e-6);
            assertEquals(perExpert, m.bytesByLink()[0][4], 1e-6);
            assertTrue(m.seconds() >= previousSeconds);
            previousSeconds = m.seconds();
        }
        assertEquals(0, cost.migrationCost(plan, from, from).totalBytes(), 0);
        // the same move across nodes costs more than inside one
        int[] table = from.slotTable();
        table[0] = 8;
        table[8] = 0;
        ExpertPlacement to = ExpertPlacement.of(16, 8, 2, table);
        MigrationCost intra = cost.migrationCost(plan, from, to);
        MigrationCost inter = h100(8, 2).migrationCost(plan, from, to);
        assertEquals(intra.totalBytes(), inter.totalBytes(), 0);
        assertEquals(intra.totalBytes(), inter.interNodeBytes(), 0);
        assertTrue(inter.seconds() > 5 * intra.seconds());
    }

    @Test
    void replicaIsCopiedFromTheNearestHolder() {
        ParallelPlan plan = ParallelPlan.parse("ep=4", 4);
        CostModel cost = new CostModel(GPT, ClusterSpec.preset("h100-nvlink-ib", 4, 2));
        // expert 0 on devices 0 and 2 (one per node); a new copy on device 3 comes from device 2
        ExpertPlacement from = ExpertPlacement.identity(16, 4, 1).withSlot(2 * 5 + 4, 0);
        ExpertPlacement to = from.withSlot(3 * 5 + 4, 0);
        MigrationCost m = cost.transferCost(plan, from, to, 100);
        assertEquals(1, m.movedExperts());
        assertEquals(100, m.bytesByLink()[2][3], 0);
        assertEquals(0, m.interNodeBytes(), 0);
    }

    @Test
    void badInputNamesTheArgument() {
        CostModel cost = h100(8, 8);
        ParallelPlan plan = ParallelPlan.parse("ep=8", 8);
        ExpertPlacement wrong = ExpertPlacement.identity(16, 4, 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cost.moeLayerSeconds(plan, wrong, new long[8][16]));
        assertTrue(e.getMessage().startsWith("placement:"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> cost.moeLayerSeconds(plan,
                ExpertPlacement.identity(16, 8, 0), new long[4][16]));
        assertTrue(e.getMessage().startsWith("loadBySourceAndExpert:"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> cost.step(new Skeleton(plan, 1, 1, 1.0),
                Collections.nCopies(3, ExpertPlacement.identity(16, 8, 0)), ExpertLoad.uniform(1, 8, 16, 64)));
        assertTrue(e.getMessage().startsWith("placements:"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Skeleton(plan, 0, 1, 1.0));
        assertTrue(e.getMessage().startsWith("microBatch:"), e.getMessage());
    }

    @Test
    void aMoeLayerAloneCostsItsExpertsAllToAllAndRouterOnly() {
        ModelShape layer = ModelShape.parseMoeLayer("moe-layer:hidden=1536,ffn=3072,tokens=8192", 16);
        assertTrue(layer.moeOnly());
        assertEquals(1, layer.moeLayers());
        assertEquals(8192, layer.seq());
        assertEquals(2, layer.topK());
        CostModel cost = new CostModel(layer, ClusterSpec.preset("h100-nvlink-ib", 16, 8));
        ParallelPlan plan = ParallelPlan.parse("ep=16", 16);
        StepEstimate step = cost.step(new Skeleton(plan, 1, 1, Skeleton.DROPLESS), null,
                ExpertLoad.uniform(1, 16, 16, 8192 * 2));
        // dense compute is the router alone: 3 x 2 * hidden * experts FLOPs per token
        assertEquals(3.0 * 2 * 1536 * 16 * 8192 / 750e12, step.denseCompute(), 1e-15);
        assertEquals(0, step.tensorParallel() + step.pipelineP2P() + step.pipelineBubble(), 1e-15);
        double full = step.expertCompute() + step.allToAll() + step.denseCompute() + step.denseGradSync()
                + step.expertGradSync();
        assertEquals(full, step.seconds(), full * 1e-12);

        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ModelShape.parseMoeLayer("moe-layer:hidden=1536,ffn=x,tokens=8", 4)).getMessage()
                .contains("ffn must be a whole number, got \"x\""));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ModelShape.parseMoeLayer("moe-layer:hidden=1536,ffn=8,tokens=8,heads=2", 4)).getMessage()
                .contains("unknown key \"heads\""));
    }

    @Test
    void balancedLoadKeepsEverySourcesSlotsAndGivesEveryExpertTheMean() {
        ExpertLoad skewed = ExpertLoad.zipf(2, 4, 8, 1001, 1.2, 3);
        ExpertLoad balanced = skewed.balanced();
        for (int l = 0; l < 2; l++) {
            long[] totals = balanced.expertTotals(l);
            long min = java.util.Arrays.stream(totals).min().orElseThrow();
            long max = java.util.Arrays.stream(totals).max().orElseThrow();
            assertTrue(max - min <= 1, java.util.Arrays.toString(totals));
            for (int s = 0; s < 4; s++) {
                long before = 0;
                long after = 0;
                for (int e = 0; e < 8; e++) {
                    before += skewed.count(l, s, e);
                    after += balanced.count(l, s, e);
                }
                assertEquals(before, after);
            }
        }
    }

    @Test
    void aClusterThatMakesTheStepTimeNonFiniteIsRefusedNotACrash() {
        ClusterSpec slow = new ClusterSpec("slow", 8, 8, 1e-300, 0, 1e-300, 0, 750e12, 3e12, 1e11, 2);
        CostModel cost = new CostModel(GPT, slow);
        ParallelPlan plan = ParallelPlan.parse("ep=8", 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cost.step(new Skeleton(plan, 1, 1, Skeleton.DROPLESS), null, ExpertLoad.zipf(1, 8, 16, 4096, 1,
                        1)));
        assertTrue(e.getMessage().contains("cluster: slow") && e.getMessage().contains("non-finite"), e.getMessage());
    }
}
