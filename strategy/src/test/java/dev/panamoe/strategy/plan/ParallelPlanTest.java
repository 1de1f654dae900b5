package dev.panamoe.strategy.plan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.strategy.plan.RankLayout.Coordinates;
import dev.panamoe.strategy.plan.RankLayout.Group;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ParallelPlanTest {
    private static final ModelShape TINY = new ModelShape("tiny", 64, 64, 4, 64, 4, 2, 8, 2, 64, true, 256, true);

    @Test
    void parsesBothSyntaxesAndInfersEdp() {
        assertEquals(new ParallelPlan(2, 1, 2, 2), ParallelPlan.parse("pp=2,dp=2,ep=2", 8));
        assertEquals(new ParallelPlan(2, 1, 2, 2), ParallelPlan.parse("pp2*dp2*ep2", 8));
        assertEquals(new ParallelPlan(1, 1, 4, 2), ParallelPlan.parse("edp2*ep4", 8));
        assertEquals(new ParallelPlan(1, 2, 4, 1), ParallelPlan.parse("tp2*ep4", 8));
        assertEquals(new ParallelPlan(1, 1, 1, 8), ParallelPlan.parse("dp8", 8));
        assertEquals(new ParallelPlan(1, 1, 8, 1), ParallelPlan.parse("ep=8", 8));
        assertEquals(8, ParallelPlan.parse("pp=4,ep=2", 8).dataParallel() * 4);
    }

    @Test
    void rejectsPlansThatDoNotFitTheWorldOrTheModel() {
        assertMessage("pp * tp * ep = 3 does not divide world 8", () -> ParallelPlan.parse("pp=3", 8));
        assertMessage("pp * tp * ep * dp = 16 but world is 8", () -> ParallelPlan.parse("ep=4,dp=4", 8));
        assertMessage("unknown key \"xp\"", () -> ParallelPlan.parse("xp=2", 8));
        assertMessage("dp and edp", () -> ParallelPlan.parse("dp=2,edp=4", 8));
        assertMessage("ep=3 does not divide experts = 8", () -> new ParallelPlan(1, 1, 3, 1).validate(TINY));
        assertMessage("pp=8 does not divide layers = 4", () -> new ParallelPlan(8, 1, 1, 1).validate(TINY));
        assertMessage("tp=8 does not divide heads = 4", () -> new ParallelPlan(1, 8, 1, 1).validate(TINY));
        assertMessage("pp=4 does not divide layers / moeEvery = 2", () -> new ParallelPlan(4, 1, 1, 1).validate(TINY));
        new ParallelPlan(2, 2, 2, 1).validate(TINY);
    }

    @Test
    void coordinatesRoundTripAndGroupsPartitionTheWorld() {
        for (String spec : new String[] {"pp2*tp2*ep2", "pp2*dp2*ep2", "tp2*ep4", "edp2*ep4", "pp4*ep2", "dp8"}) {
            RankLayout layout = new RankLayout(ParallelPlan.parse(spec, 8));
            ParallelPlan plan = layout.plan();
            for (int r = 0; r < 8; r++) {
                assertEquals(r, layout.rank(layout.coordinates(r)), spec);
            }
            int[] expectedSizes = {plan.tp(), plan.ep(), plan.edp(), plan.dataParallel(), plan.pp(), plan.stageSize()};
            for (Group g : Group.values()) {
                Set<Integer> seen = new HashSet<>();
                for (int r = 0; r < 8; r++) {
                    int[] m = layout.members(g, r);
                    assertEquals(expectedSizes[g.ordinal()], m.length, spec + " " + g);
                    assertEquals(m[layout.indexIn(g, r)], r);
                    seen.add(layout.color(g, r));
                }
                assertEquals(8 / expectedSizes[g.ordinal()], seen.size(), spec + " " + g + " group count");
            }
        }
    }

    @Test
    void tensorGroupsAreContiguousAndExpertGroupsStrideByTp() {
        RankLayout layout = new RankLayout(ParallelPlan.parse("pp2*tp2*ep2", 8));
        assertArrayEquals(new int[] {2, 3}, layout.members(Group.TENSOR, 3));
        assertArrayEquals(new int[] {1, 3}, layout.members(Group.EXPERT, 3));
        assertArrayEquals(new int[] {4, 5, 6, 7}, layout.members(Group.STAGE, 6));
        assertArrayEquals(new int[] {1, 5}, layout.members(Group.PIPELINE, 5));
        assertEquals(new Coordinates(1, 0, 1, 0), layout.coordinates(6));
        RankLayout dp = new RankLayout(ParallelPlan.parse("dp2*ep4", 8));
        assertArrayEquals(new int[] {4, 5, 6, 7}, dp.members(Group.EXPERT, 5));
        assertArrayEquals(new int[] {1, 5}, dp.members(Group.EXPERT_DATA, 5));
        assertEquals(5, dp.dataIndex(5));
        assertTrue(dp.members(Group.DATA, 0).length == 8);
    }

    private static void assertMessage(String expected, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().contains(expected), "message \"" + e.getMessage() + "\" lacks \"" + expected + "\"");
    }
}
