package dev.panamoe.strategy.plan;

import java.util.Arrays;

/**
 * Which ranks form each process group of a {@link ParallelPlan}. A rank's coordinates are
 * (stage, edp, ep, tp) with tp varying fastest (Megatron-Core's order):
 * <pre>
 *   rank = tp + plan.tp * (ep + plan.ep * (edp + plan.edp * stage))
 * </pre>
 * so tensor-parallel groups are contiguous ranks (they exchange the most), expert-parallel
 * groups are the next level (contiguous when tp = 1), expert-data-parallel groups are strided,
 * and stages are contiguous blocks of stageSize ranks.
 */
public final class RankLayout {

    /** The process groups of the runtime. */
    public enum Group {
        /** Same stage, edp and ep: the ranks that split each layer's weights. */
        TENSOR,
        /** Same stage, edp and tp: the ranks that split the experts and exchange tokens. */
        EXPERT,
        /** Same stage, ep and tp: the replicas of the same experts. */
        EXPERT_DATA,
        /** Same stage and tp: the replicas of the dense weights (ep * edp ranks). */
        DATA,
        /** Same edp, ep and tp: one rank per stage, in stage order. */
        PIPELINE,
        /** Same stage: every rank that holds the stage's layers. */
        STAGE
    }

    public record Coordinates(int stage, int edp, int ep, int tp) {
    }

    private final ParallelPlan plan;

    public RankLayout(ParallelPlan plan) {
        if (plan == null) {
            throw new IllegalArgumentException("plan: must not be null");
        }
        this.plan = plan;
    }

    public ParallelPlan plan() {
        return plan;
    }

    public Coordinates coordinates(int rank) {
        checkRank(rank);
        int tp = rank % plan.tp();
        int rest = rank / plan.tp();
        int ep = rest % plan.ep();
        rest /= plan.ep();
        int edp = rest % plan.edp();
        int stage = rest / plan.edp();
        return new Coordinates(stage, edp, ep, tp);
    }

    public int rank(Coordinates c) {
        return c.tp() + plan.tp() * (c.ep() + plan.ep() * (c.edp() + plan.edp() * c.stage()));
    }

    /** The ranks of rank's group of the given kind, ascending (which is also their order in the group). */
    public int[] members(Group group, int rank) {
        int world = plan.world();
        int color = color(group, rank);
        return java.util.stream.IntStream.range(0, world).filter(r -> color(group, r) == color).toArray();
    }

    /** This rank's index in its group of the given kind. */
    public int indexIn(Group group, int rank) {
        return Arrays.binarySearch(members(group, rank), rank);
    }

    /**
     * A number equal for exactly the ranks of one group of the kind: the color to pass to
     * {@code Communicator.split(color, rank)}.
     */
    public int color(Group group, int rank) {
        Coordinates c = coordinates(rank);
        return switch (group) {
            case TENSOR -> rank(new Coordinates(c.stage(), c.edp(), c.ep(), 0));
            case EXPERT -> rank(new Coordinates(c.stage(), c.edp(), 0, c.tp()));
            case EXPERT_DATA -> rank(new Coordinates(c.stage(), 0, c.ep(), c.tp()));
            case DATA -> rank(new Coordinates(c.stage(), 0, 0, c.tp()));
            case PIPELINE -> rank(new Coordinates(0, c.edp(), c.ep(), c.tp()));
            case STAGE -> c.stage();
        };
    }

    /**
     * This rank's index among the plan.dataParallel() ranks of its DATA group: which share of
     * the global batch it trains on.
     */
    public int dataIndex(int rank) {
        Coordinates c = coordinates(rank);
        return c.ep() + plan.ep() * c.edp();
    }

    private void checkRank(int rank) {
        if (rank < 0 || rank >= plan.world()) {
            throw new IllegalArgumentException("rank: " + rank + " is outside [0, world=" + plan.world() + ")");
        }
    }
}
