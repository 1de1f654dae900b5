package dev.panamoe.runtime.model;

import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.parallel.DistributedMoELayer;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;

/**
 * Transitional (issue 10), until the one MoE layer replaces both of today's layer classes: the MoE
 * FFN of a block over either of them, {@link MoELayer} on a single device, {@link
 * DistributedMoELayer} on a rank of a plan. {@link GptMoeModel} picks in one place. The single
 * device keeps MoELayer because its aux loss is the fused kernel's, which can differ in the last
 * bit from the distributed layer's, computed from the all-reduced statistics (the gradients are
 * bitwise the same), and the single device's results stay bit for bit those they always were.
 */
sealed interface MoeFfn extends AutoCloseable {

    /**
     * The buffers of one micro-batch in flight through the layer (its workspace) and the layer's
     * calls on them: forward(x), backward(gradY, lossScale) with lossScale d(total loss) / d(aux +
     * z loss), the aux plus z loss of the last forward (scaled by their coefficients) and the
     * routed (token, k) slots per logical expert, both of the whole micro-batch.
     */
    record Pass(Object workspace, UnaryOperator<Tensor> forward, BiFunction<Tensor, Float, Tensor> backward,
            Supplier<Float> auxLoss, Supplier<int[]> routedCounts, Runnable release) implements AutoCloseable {
        @Override
        public void close() {
            release.run();
        }
    }

    Pass newPass();

    /** The replicated gate [hidden, experts]. */
    Parameter gate();

    /** w1 and w2 of a local slot, named after the expert it holds ("experts.5.w1"). */
    List<Parameter> slotParameters(int localSlot);

    @Override
    void close();

    /** The single-device layer; its slots are the experts in order. */
    record OneDevice(MoELayer layer) implements MoeFfn {
        @Override
        public Pass newPass() {
            MoELayer.Workspace ws = layer.newWorkspace();
            return new Pass(ws, x -> layer.forward(x, ws), (gradY, scale) -> layer.backward(gradY, scale, ws),
                    () -> ws.auxLoss() + ws.zLoss(), ws::routedCounts, ws::close);
        }

        @Override
        public Parameter gate() {
            return layer.router().weight();
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

    /** The layer of a rank of a plan. */
    record Distributed(DistributedMoELayer layer) implements MoeFfn {
        @Override
        public Pass newPass() {
            DistributedMoELayer.Workspace ws = layer.newWorkspace();
            return new Pass(ws, x -> layer.forward(x, ws), (gradY, scale) -> layer.backward(gradY, scale, ws),
                    () -> ws.auxLoss() + ws.zLoss(), ws::globalRoutedCounts, ws::close);
        }

        @Override
        public Parameter gate() {
            return layer.gate();
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
