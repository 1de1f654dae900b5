package dev.panamoe.ops;

/**
 * Brings expert outputs back to token order: y[t] = sum_j w[t, j] * expertOut[row of (t, j)],
 * dropped slots contributing nothing. Backward gives the expert outputs' gradient and the
 * top-k weights' gradient, which flows on into the router.
 */
public final class Combiner {
    private final Backend backend;

    public Combiner(Backend backend) {
        this.backend = Checks.notNull("backend", backend);
    }

    /** y [T, H] from expertOut [plan.rows(), H] and topkWeights [T, K]. */
    public void forward(Tensor expertOut, Tensor topkWeights, DispatchPlan plan, Tensor y) {
        Checks.notNull("plan", plan);
        Dispatcher.checkRows("expertOut", expertOut, plan);
        backend.combine(expertOut, topkWeights, plan.slotPosition(), y);
    }

    /** gradExpertOut [plan.rows(), H] and gradTopkWeights [T, K] from gradY [T, H]. */
    public void backward(Tensor gradY, Tensor expertOut, Tensor topkWeights, DispatchPlan plan, Tensor gradExpertOut,
            Tensor gradTopkWeights) {
        Checks.notNull("plan", plan);
        Dispatcher.checkRows("expertOut", expertOut, plan);
        backend.combineBackward(gradY, expertOut, topkWeights, plan.slotPosition(), gradExpertOut, gradTopkWeights);
    }
}
