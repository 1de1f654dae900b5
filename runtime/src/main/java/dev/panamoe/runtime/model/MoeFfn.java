package dev.panamoe.runtime.model;

import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.parallel.DistributedMoELayer;
import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.List;

/**
 * Transitional (issue 10), until the one MoE layer replaces both of today's layer classes: the MoE
 * FFN of a block over either of them, {@link MoELayer} on a single device, {@link
 * DistributedMoELayer} on a rank of a plan. {@link GptMoeModel} picks in one place. The single
 * device keeps MoELayer because its aux loss is the fused kernel's, which can differ in the last
 * bit from the distributed layer's, computed from the all-reduced statistics (the gradients are
 * bitwise the same), and the single device's results stay bit for bit those they always were.
 */
sealed interface MoeFfn extends AutoCloseable {

    /** The buffers of one micro-batch in flight through the layer. */
    interface Pass extends AutoCloseable {
        Tensor forward(Tensor x);

        /** d loss / d x; lossScale is d(total loss) / d(aux + z loss). */
        Tensor backward(Tensor gradY, float lossScale);

        /** Aux plus z loss of the last forward (scaled by their coefficients), of the whole micro-batch. */
        float auxLoss();

        /** Routed (token, k) slots per logical expert in the last forward, of the whole micro-batch. */
        int[] routedCounts();

        @Override
        void close();
    }

    Pass newPass();

    /** The replicated gate [hidden, experts]. */
    Parameter gate();

    /** The layer's placement over the EXPERT group. */
    ExpertPlacement placement();

    /** w1 and w2 of a local slot, named after the expert it holds ("experts.5.w1"). */
    List<Parameter> slotParameters(int localSlot);

    @Override
    void close();

    /** The single-device layer; its slots are the experts in order. */
    record OneDevice(MoELayer layer) implements MoeFfn {
        @Override
        public Pass newPass() {
            return new OneDevicePass(layer, layer.newWorkspace());
        }

        @Override
        public Parameter gate() {
            return layer.router().weight();
        }

        @Override
        public ExpertPlacement placement() {
            return ExpertPlacement.identity(layer.config().experts(), 1, 0);
        }

        @Override
        public List<Parameter> slotParameters(int e) {
            return List.of(named(layer.experts().w1(e), "experts." + e + ".w1"),
                    named(layer.experts().w2(e), "experts." + e + ".w2"));
        }

        private static Parameter named(Parameter p, String name) {
            return new Parameter(name, p.value(), p.grad());
        }

        @Override
        public void close() {
            layer.close();
        }
    }

    /** A pass of the single-device layer: its workspace. */
    record OneDevicePass(MoELayer layer, MoELayer.Workspace workspace) implements Pass {
        @Override
        public Tensor forward(Tensor x) {
            return layer.forward(x, workspace);
        }

        @Override
        public Tensor backward(Tensor gradY, float lossScale) {
            return layer.backward(gradY, lossScale, workspace);
        }

        @Override
        public float auxLoss() {
            return workspace.auxLoss() + workspace.zLoss();
        }

        @Override
        public int[] routedCounts() {
            return workspace.routedCounts();
        }

        @Override
        public void close() {
            workspace.close();
        }
    }

    /** The layer of a rank of a plan. */
    record Distributed(DistributedMoELayer layer) implements MoeFfn {
        @Override
        public Pass newPass() {
            DistributedMoELayer.Workspace ws = layer.newWorkspace();
            return new Pass() {
                @Override
                public Tensor forward(Tensor x) {
                    return layer.forward(x, ws);
                }

                @Override
                public Tensor backward(Tensor gradY, float lossScale) {
                    return layer.backward(gradY, lossScale, ws);
                }

                @Override
                public float auxLoss() {
                    return ws.auxLoss() + ws.zLoss();
                }

                @Override
                public int[] routedCounts() {
                    return ws.globalRoutedCounts();
                }

                @Override
                public void close() {
                    ws.close();
                }
            };
        }

        @Override
        public Parameter gate() {
            return layer.gate();
        }

        @Override
        public ExpertPlacement placement() {
            return layer.placement();
        }

        @Override
        public List<Parameter> slotParameters(int localSlot) {
            return layer.slotParameters(localSlot);
        }

        @Override
        public void close() {
            layer.close();
        }
    }
}
