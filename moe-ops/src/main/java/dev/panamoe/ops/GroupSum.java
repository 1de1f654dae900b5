package dev.panamoe.ops;

/**
 * A sum over the ranks that share a part of the MoE layer's work — the DATA group (router
 * statistics, the gate's gradient), the TENSOR group (partial expert outputs and input
 * gradients) or the EXPERT_DATA group (expert gradients). {@link #NONE}, the group of one
 * device, sums nothing; the runtime implements it over a communicator, so this module stays free
 * of communication.
 */
public interface GroupSum {

    /** The group of one rank: nothing to sum. */
    GroupSum NONE = new GroupSum() {
        @Override
        public int size() {
            return 1;
        }

        @Override
        public int rank() {
            return 0;
        }

        @Override
        public void sum(Tensor t) {
        }

        @Override
        public String toString() {
            return "no group";
        }
    };

    int size();

    /** This rank's index in the group. */
    int rank();

    /**
     * Replaces t with the element-wise sum of every rank's t (collective: every rank of the group
     * calls it). t is f32 or i32, or bf16 for a bf16 layer's partial expert outputs and input
     * gradients over TENSOR, which are added in f32 and rounded once.
     */
    void sum(Tensor t);
}
