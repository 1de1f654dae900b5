package dev.panamoe.runtime.parallel;

import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.OneRankCommunicator;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import dev.panamoe.strategy.plan.RankLayout.Group;
import java.util.EnumMap;
import java.util.Map;

/**
 * The communicators of one rank for every {@link RankLayout.Group} of a plan, created in one
 * place: each is {@code world.split(layout.color(group, rank), rank)}, so a rank's index in a
 * group is {@link RankLayout#indexIn} (members are ordered by world rank). Creating them is
 * collective over the world: every rank constructs its ProcessGroups at the same point.
 *
 * <pre>
 *   tensor()      same stage, edp, ep  — split each layer's weights (TP reductions)
 *   expert()      same stage, edp, tp  — hold different experts; exchange token rows (index = ep)
 *   expertData()  same stage, ep, tp   — replicas of the same expert shards (index = edp)
 *   data()        same stage, tp       — replicas of the dense weights, different tokens
 *   pipeline()    same edp, ep, tp     — one rank per stage (index = stage)
 *   stage()       same stage           — every rank of this rank's stage
 * </pre>
 * {@link #close()} closes the groups, not the world.
 */
public final class ProcessGroups implements AutoCloseable {
    private final RankLayout layout;
    private final Communicator world;
    private final Map<Group, Communicator> groups = new EnumMap<>(Group.class);

    public ProcessGroups(RankLayout layout, Communicator world) {
        if (layout == null || world == null) {
            throw new IllegalArgumentException("layout, world: must not be null, got " + layout + ", " + world);
        }
        if (world.size() != layout.plan().world()) {
            throw new IllegalArgumentException("world: " + world.size() + " ranks, but the plan " + layout.plan()
                    + " needs " + layout.plan().world());
        }
        this.layout = layout;
        this.world = world;
        int rank = world.rank();
        for (Group group : Group.values()) {
            Communicator comm = world.split(layout.color(group, rank), rank);
            int expected = layout.members(group, rank).length;
            if (comm.size() != expected || comm.rank() != layout.indexIn(group, rank)) {
                throw new IllegalStateException(group + " group of rank " + rank + ": split gave rank " + comm.rank()
                        + " of " + comm.size() + ", the layout says " + layout.indexIn(group, rank) + " of " + expected);
            }
            groups.put(group, comm);
        }
    }

    /**
     * The groups of a single device: a world of one rank ({@link OneRankCommunicator}, whose
     * collectives have nothing to exchange), alone in every group.
     */
    public static ProcessGroups single() {
        return new ProcessGroups(new RankLayout(ParallelPlan.SINGLE), new OneRankCommunicator());
    }

    public RankLayout layout() {
        return layout;
    }

    public ParallelPlan plan() {
        return layout.plan();
    }

    /** This rank's world rank. */
    public int rank() {
        return world.rank();
    }

    public RankLayout.Coordinates coordinates() {
        return layout.coordinates(world.rank());
    }

    public Communicator group(Group group) {
        return groups.get(group);
    }

    public Communicator world() {
        return world;
    }

    public Communicator tensor() {
        return groups.get(Group.TENSOR);
    }

    public Communicator expert() {
        return groups.get(Group.EXPERT);
    }

    public Communicator expertData() {
        return groups.get(Group.EXPERT_DATA);
    }

    public Communicator data() {
        return groups.get(Group.DATA);
    }

    public Communicator pipeline() {
        return groups.get(Group.PIPELINE);
    }

    public Communicator stage() {
        return groups.get(Group.STAGE);
    }

    /** Closes every group communicator (not the world). */
    @Override
    public void close() {
        groups.values().forEach(Communicator::close);
    }
}
