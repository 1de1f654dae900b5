package dev.panamoe.ops;

/**
 * The MoE layer's exchange step over the EXPERT group: carries this rank's dispatched rows
 * (grouped by physical slot, slots numbered device by device) to the ranks that hold the slots,
 * and the experts' outputs back; backward the same for the gradients. {@link #LOCAL} is one
 * device's: the rows stay where the dispatch put them and the experts read and write the layer's
 * own row buffers. The runtime implements an all-to-all over a communicator.
 */
public interface TokenExchange {

    /** One device: nothing moves. */
    TokenExchange LOCAL = LocalExchange.INSTANCE;

    /** Ranks of the group (the devices of the layer's placement). */
    int size();

    /** This rank's index in the group. */
    int rank();

    /** The exchange's state in one workspace (rows: the rows' dtype, f32 or bf16; hidden: row width; localSlots: this rank's slots). */
    Pass newPass(Backend backend, DType rows, int hidden, int localSlots);

    /**
     * What one workspace's pass sent and received, kept from a forward to its backward. The
     * expert side of a pass is the rows of this rank's local slots, grouped by {@link #offsets()}.
     */
    interface Pass extends AutoCloseable {

        /**
         * Forward: xs [plan.rows(), hidden] (the dispatched rows by physical slot) to the local
         * slots; returns their rows [R, hidden], R >= 0. Collective over the group.
         */
        Tensor dispatch(DispatchPlan plan, Tensor xs);

        /** Group offsets [localSlots + 1] of the rows of the last dispatch. */
        Tensor offsets();

        /** Where the experts write the outputs of the dispatched rows [R, hidden]; expertOut is the layer's [plan.rows(), hidden]. */
        Tensor outputs(Tensor expertOut);

        /** Forward: outputs (from {@link #outputs}) back into expertOut by physical slot. Collective. */
        void combine(Tensor outputs, Tensor expertOut);

        /** Backward: gradExpertOut [plan.rows(), hidden] to the local slots: returns the gradient of the outputs [R, hidden]. Collective. */
        Tensor dispatchGradient(Tensor gradExpertOut);

        /** Where the experts write the gradient of their input rows [R, hidden]; gradXs is the layer's [plan.rows(), hidden]. */
        Tensor inputGradients(Tensor gradXs);

        /** Backward: inputGradients back into gradXs by physical slot. Collective. */
        void combineGradient(Tensor inputGradients, Tensor gradXs);

        @Override
        void close();
    }
}
