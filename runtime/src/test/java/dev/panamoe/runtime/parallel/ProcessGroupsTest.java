package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import dev.panamoe.strategy.plan.RankLayout.Group;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ProcessGroupsTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    /**
     * On pp2*tp2*ep2 (8 ranks), every group communicator has the layout's size and index, and an
     * all-reduce of (world rank + 1) over it gives the sum over the layout's members, so the
     * groups hold exactly the ranks RankLayout names.
     */
    @Test
    void everyGroupHoldsTheLayoutsMembers() {
        RankLayout layout = new RankLayout(new ParallelPlan(2, 2, 2, 1));
        List<Map<Group, Float>> sums = InJvmWorld.run(8, TIMEOUT, world -> {
            Map<Group, Float> out = new EnumMap<>(Group.class);
            try (ProcessGroups groups = new ProcessGroups(layout, world);
                    TensorScope s = TensorScope.shared(CpuBackend.get())) {
                assertEquals(layout.coordinates(world.rank()), groups.coordinates());
                for (Group g : Group.values()) {
                    Communicator comm = groups.group(g);
                    assertEquals(layout.members(g, world.rank()).length, comm.size(), g + " size");
                    assertEquals(layout.indexIn(g, world.rank()), comm.rank(), g + " index");
                    Tensor t = s.allocate("t", DType.F32, 1);
                    t.setFloat(0, world.rank() + 1);
                    comm.allReduce(t);
                    out.put(g, t.getFloat(0));
                }
                assertTrue(groups.tensor() == groups.group(Group.TENSOR) && groups.expert() == groups.group(Group.EXPERT)
                        && groups.expertData() == groups.group(Group.EXPERT_DATA) && groups.data() == groups.group(Group.DATA)
                        && groups.pipeline() == groups.group(Group.PIPELINE) && groups.stage() == groups.group(Group.STAGE));
            }
            return out;
        });
        for (int rank = 0; rank < 8; rank++) {
            for (Group g : Group.values()) {
                int expected = 0;
                for (int member : layout.members(g, rank)) {
                    expected += member + 1;
                }
                assertEquals(expected, sums.get(rank).get(g), 0f, g + " of rank " + rank);
            }
        }
        // spot-check the layout itself on rank 5 = (stage 1, edp 0, ep 0, tp 1)
        assertArrayEquals(new int[] {4, 5}, layout.members(Group.TENSOR, 5));
        assertArrayEquals(new int[] {5, 7}, layout.members(Group.EXPERT, 5));
        assertArrayEquals(new int[] {1, 5}, layout.members(Group.PIPELINE, 5));
    }

    @Test
    void rejectsAWorldOfTheWrongSize() {
        RankLayout layout = new RankLayout(new ParallelPlan(1, 1, 4, 1));
        var error = assertThrows(RuntimeException.class,
                () -> InJvmWorld.run(2, TIMEOUT, world -> new ProcessGroups(layout, world)));
        Throwable cause = error.getCause() != null ? error.getCause() : error;
        assertTrue(cause.getMessage().contains("needs 4"), cause.getMessage());
    }
}
