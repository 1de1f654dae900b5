package dev.panamoe.strategy.policy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class BalancerTest {

    @Test
    void lptMatchesTheHandWorkedExample() {
        // heaviest first: e0 -> d0 (all empty, its own device); e1 -> d1 (least loaded, lowest index);
        // e2 -> d2; e3 (3) -> d2 (8 < 9, 10); e4 -> d1 (d2 is full; 9 < 10); e5 -> d0 (the only free slot)
        double[] load = {10, 9, 8, 3, 2, 1};
        int[] device = Balancer.lpt(load, 3, 2, new int[] {0, 0, 1, 1, 2, 2});
        assertArrayEquals(new int[] {0, 1, 2, 2, 1, 0}, device);
    }

    @Test
    void lptKeepsTiesOnTheCurrentDevice() {
        // e0: both devices empty, its current device 1 wins; e2: both at 5, its current device 0 wins
        int[] device = Balancer.lpt(new double[] {5, 5, 5, 5}, 2, 2, new int[] {1, 1, 0, 0});
        assertArrayEquals(new int[] {1, 0, 0, 1}, device);
    }

    @Test
    void greedyAcceptsTheHandWorkedMoveAndKeepsSlotsOfExpertsThatStay() {
        ExpertPlacement identity = ExpertPlacement.identity(6, 3, 0);
        double[] load = {10, 9, 8, 3, 2, 1};
        ExpertPlacement next = GreedyPolicy.rebalance(identity, load);
        assertArrayEquals(new double[] {11, 11, 11}, Balancer.deviceLoads(next, load));
        // d0 keeps e0 in its slot and takes e5; d1 and d2 receive two new experts each
        assertArrayEquals(new int[] {0, 5, 1, 4, 2, 3}, next.slotTable());
    }

    @Test
    void greedyNeverAcceptsAMoveThatDoesNotLowerTheBusiestDevice() {
        ExpertPlacement identity = ExpertPlacement.identity(6, 3, 0);
        assertNull(GreedyPolicy.rebalance(identity, new double[] {4, 4, 4, 4, 4, 4}), "balanced: nothing to gain");
        // the hottest expert alone bounds the maximum: LPT cannot lower it
        assertNull(GreedyPolicy.rebalance(ExpertPlacement.of(6, 3, 2, new int[] {0, 5, 1, 4, 2, 3}),
                new double[] {30, 1, 1, 1, 1, 1}));
        SplittableRandom random = new SplittableRandom(3);
        for (int trial = 0; trial < 300; trial++) {
            int devices = 1 + random.nextInt(6);
            int experts = devices * (1 + random.nextInt(4));
            ExpertPlacement p = randomPermutation(experts, devices, random);
            double[] load = new double[experts];
            for (int e = 0; e < experts; e++) {
                load[e] = random.nextInt(4) == 0 ? 0 : random.nextInt(100);
            }
            ExpertPlacement next = GreedyPolicy.rebalance(p, load);
            if (next != null) {
                assertTrue(max(Balancer.deviceLoads(next, load)) < max(Balancer.deviceLoads(p, load)), "trial " + trial);
                assertEquals(p.slotsPerDevice(), next.slotsPerDevice());
            }
        }
    }

    @Test
    void replicasSplitTheHotExpertAndLowerTheBusiestDevice() {
        // 4 devices x (1 native + 1 replica slot); expert 0 takes 70 of 100 tokens
        double[] load = {70, 10, 10, 10};
        int[] home = {0, 1, 2, 3};
        int[][] holders = Balancer.replicate(load, home, 4, 2, 4);
        ExpertPlacement p = Balancer.arrange(ExpertPlacement.identity(4, 4, 1), holders);
        double[] deviceLoad = Balancer.deviceLoads(p, load);
        // copies on d1, d2, d3 in turn (70 / 4 = 17.5 each, max 27.5 instead of 70); the fourth
        // replica goes to d0, the only free slot, and takes a share of one of the three busiest
        assertEquals(4, p.copies(0));
        assertEquals(27.5, max(deviceLoad), 1e-9);
        assertEquals(0, p.expertAt(0));
        assertTrue(p.expertAt(1) >= 1 && p.copies(p.expertAt(1)) == 2, p.toString());
        assertEquals(22.5, deviceLoad[0], 1e-9);
    }

    @Test
    void replicationStopsWhenAnotherCopyWouldNotHelp() {
        // even load: a copy can only make some device busier
        int[][] holders = Balancer.replicate(new double[] {5, 5, 5, 5}, new int[] {0, 1, 2, 3}, 4, 2, 4);
        for (int[] h : holders) {
            assertEquals(1, h.length);
        }
    }

    @Test
    void refineSwapsFewExpertsAndLowersTheBusiestDevice() {
        double[] load = {9, 8, 1, 1, 5, 5, 5, 5};
        int[] home = {0, 0, 1, 1, 2, 2, 3, 3};
        int[] next = Balancer.refine(load, home, 4, 4);
        double[] before = new double[4];
        double[] after = new double[4];
        int moved = 0;
        for (int e = 0; e < load.length; e++) {
            before[home[e]] += load[e];
            after[next[e]] += load[e];
            moved += next[e] != home[e] ? 1 : 0;
        }
        assertTrue(max(after) < max(before), "max " + max(after) + " vs " + max(before));
        // swap e0 (9) with e2 (1): 17, 2 -> 9, 10; then no pair fits the gap of 1
        assertEquals(2, moved);
        assertArrayEquals(new double[] {9, 10, 10, 10}, after);
    }

    @Test
    void arrangeMovesOnlyWhatChanged() {
        ExpertPlacement p = ExpertPlacement.of(4, 2, 3, new int[] {0, 1, -1, 2, 3, -1});
        int[][] holders = {{0}, {1}, {1}, {1, 0}};
        ExpertPlacement next = Balancer.arrange(p, holders);
        // e1 leaves d0 for d1's free slot, e3's new copy takes the slot e1 left; 0 and 2, 3 stay put
        assertArrayEquals(new int[] {0, 3, -1, 2, 3, 1}, next.slotTable());
        assertEquals(2, next.changedSlots(p));
    }

    private static ExpertPlacement randomPermutation(int experts, int devices, SplittableRandom random) {
        int[] table = new int[experts];
        for (int i = 0; i < experts; i++) {
            table[i] = i;
        }
        for (int i = experts - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = table[i];
            table[i] = table[j];
            table[j] = t;
        }
        return ExpertPlacement.of(experts, devices, experts / devices, table);
    }

    static double max(double[] v) {
        return v[Balancer.argMax(v)];
    }
}
