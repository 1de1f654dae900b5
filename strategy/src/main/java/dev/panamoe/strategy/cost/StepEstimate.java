package dev.panamoe.strategy.cost;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A predicted training step: its time and the terms it is made of. The terms are those of the
 * critical path — the slowest pipeline stage of the slowest expert-parallel lane, for all m
 * micro-batches — plus the 1F1B bubble and the gradient reductions, so they add up to seconds.
 *
 * @param seconds            the step
 * @param expertCompute      expert GEMMs of the busiest device, summed over the stage's MoE layers
 * @param allToAll           the MoE layers' dispatch and combine exchanges
 * @param denseCompute       attention, dense FFNs, routers, LM head
 * @param tensorParallel     TP all-reduces
 * @param pipelineP2P        activations and gradients sent between stages
 * @param pipelineBubble     1F1B fill and drain: step - m x slowest stage
 * @param denseGradSync      all-reduce of the dense gradients over the DATA group
 * @param expertGradSync     all-reduce of the expert gradients over the EXPERT_DATA group
 * @param droppedFraction    token slots over capacity, of all routed (0 when dropless)
 * @param maxOverMeanLoad    busiest-device / mean-device rows, averaged over the MoE layers and lanes
 * @param memory             bytes per device of the fullest stage
 */
public record StepEstimate(Skeleton skeleton, double seconds, double expertCompute, double allToAll,
        double denseCompute, double tensorParallel, double pipelineP2P, double pipelineBubble, double denseGradSync,
        double expertGradSync, double droppedFraction, double maxOverMeanLoad, Memory memory) {

    /** Bytes per device; feasible when the total fits the device's usable memory. */
    public record Memory(double parameters, double gradients, double optimizer, double activations, double capacity) {
        public double total() {
            return parameters + gradients + optimizer + activations;
        }

        public boolean feasible() {
            return total() <= capacity;
        }
    }

    public boolean feasible() {
        return memory.feasible();
    }

    /** The time terms by name, in a fixed order; they sum to seconds. */
    public Map<String, Double> terms() {
        Map<String, Double> t = new LinkedHashMap<>();
        t.put("expert_compute", expertCompute);
        t.put("all_to_all", allToAll);
        t.put("dense_compute", denseCompute);
        t.put("tensor_parallel", tensorParallel);
        t.put("pipeline_p2p", pipelineP2P);
        t.put("pipeline_bubble", pipelineBubble);
        t.put("dense_grad_sync", denseGradSync);
        t.put("expert_grad_sync", expertGradSync);
        return t;
    }
}
