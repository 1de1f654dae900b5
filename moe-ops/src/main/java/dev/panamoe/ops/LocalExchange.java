package dev.panamoe.ops;

/**
 * {@link TokenExchange#LOCAL}: one device, so the rows stay where the dispatch put them; the
 * experts read the dispatched rows and write the layer's own buffers, grouped as the plan groups
 * them (every slot is local).
 */
final class LocalExchange implements TokenExchange {
    static final LocalExchange INSTANCE = new LocalExchange();

    private LocalExchange() {
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public Pass newPass(Backend backend, DType rows, int hidden, int localSlots) {
        return new LocalPass();
    }

    @Override
    public String toString() {
        return "local exchange";
    }

    private static final class LocalPass implements Pass {
        private DispatchPlan plan;

        @Override
        public Tensor dispatch(DispatchPlan plan, Tensor xs) {
            this.plan = plan;
            return xs;
        }

        @Override
        public Tensor offsets() {
            return plan.expertOffsets();
        }

        @Override
        public Tensor outputs(Tensor expertOut) {
            return expertOut;
        }

        @Override
        public void combine(Tensor outputs, Tensor expertOut) {
        }

        @Override
        public Tensor dispatchGradient(Tensor gradExpertOut) {
            return gradExpertOut;
        }

        @Override
        public Tensor inputGradients(Tensor gradXs) {
            return gradXs;
        }

        @Override
        public void combineGradient(Tensor inputGradients, Tensor gradXs) {
        }

        @Override
        public void close() {
            plan = null;
        }
    }
}
