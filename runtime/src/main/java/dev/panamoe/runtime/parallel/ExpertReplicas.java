package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.ExpertSlots;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * Keeps replicated experts equal to their owner (the expert's first slot), Megatron-Core's
 * replica scheme: before the gradient reduction each copy's gradient is summed into the owner's
 * and zeroed ({@link #reduceGradients}), so only the owner's gradient counts and the optimizer
 * state never moves for a replica; after the optimizer step the owner's weights are copied into
 * its copies ({@link #copyWeights}). Both are one all-to-allv in the EXPERT group (the copies may
 * be on other EP ranks); collective over it.
 */
final class ExpertReplicas {

    /** One copy of a layer's expert: its slot and its owner's (physical slots). */
    private record Copy(int layer, int slot, int owner) {
    }

    private final Backend backend;
    private final Communicator expert;

    ExpertReplicas(Backend backend, Communicator expert) {
        this.backend = backend;
        this.expert = expert;
    }

    /** owner.grad += each copy's grad (in source rank, then layer and slot order); copies' grads zeroed. */
    void reduceGradients(List<MoELayer> layers) {
        List<Copy> copies = copies(layers);
        if (copies.isEmpty()) {
            return;
        }
        transfer(layers, copies, true, Parameter::grad);
        for (Copy c : copies) {
            if (holds(layers.get(c.layer()), c.slot())) {
                slot(layers.get(c.layer()), c.slot()).forEach(Parameter::zeroGrad);
            }
        }
    }

    /**
     * Every copy's weights = its owner's (the f32 masters; a bf16 layer's working copies of the
     * copies this rank holds are rounded from them: the owners' were written by the optimizer).
     */
    void copyWeights(List<MoELayer> layers) {
        List<Copy> copies = copies(layers);
        if (copies.isEmpty()) {
            return;
        }
        transfer(layers, copies, false, Parameter::value);
        for (Copy c : copies) {
            MoELayer layer = layers.get(c.layer());
            if (holds(layer, c.slot())) {
                layer.refreshSlotWorkingCopies(localSlot(layer, c.slot()));
            }
        }
    }

    /** The copies of every layer's replicated experts (slots after the first), by layer then slot. */
    private static List<Copy> copies(List<MoELayer> layers) {
        List<Copy> copies = new ArrayList<>();
        for (int l = 0; l < layers.size(); l++) {
            ExpertSlots p = layers.get(l).placement();
            for (int e = 0; e < p.experts(); e++) {
                int[] slots = p.slotsOf(e);
                for (int i = 1; i < slots.length; i++) {
                    copies.add(new Copy(l, slots[i], slots[0]));
                }
            }
        }
        return copies;
    }

    /**
     * Gradients (toOwner): each copy's tensor goes to its owner's rank and is added there; weights:
     * each owner's tensor goes to the copy's rank and replaces the copy's.
     */
    private void transfer(List<MoELayer> layers, List<Copy> copies, boolean toOwner,
            Function<Parameter, Tensor> tensor) {
        int ep = expert.size();
        int me = expert.rank();
        int[] sendCounts = new int[ep];
        int[] recvCounts = new int[ep];
        for (Copy c : copies) {
            ExpertSlots p = layers.get(c.layer()).placement();
            int from = p.deviceOf(toOwner ? c.slot() : c.owner());
            int to = p.deviceOf(toOwner ? c.owner() : c.slot());
            int n = size(layers.get(c.layer()), tensor);
            sendCounts[to] += from == me ? n : 0;
            recvCounts[from] += to == me ? n : 0;
        }
        try (TensorScope scope = TensorScope.confined(backend)) {
            Tensor send = scope.allocate("replica send", DType.F32, Math.max(1, sum(sendCounts)));
            Tensor recv = scope.allocate("replica recv", DType.F32, Math.max(1, sum(recvCounts)));
            int offset = 0;
            for (int q = 0; q < ep; q++) {
                for (Copy c : copies) {
                    ExpertSlots p = layers.get(c.layer()).placement();
                    int source = toOwner ? c.slot() : c.owner();
                    if (p.deviceOf(source) == me && p.deviceOf(toOwner ? c.owner() : c.slot()) == q) {
                        for (Parameter w : slot(layers.get(c.layer()), source)) {
                            Tensor t = tensor.apply(w);
                            send.slice(offset, offset + (int) t.numel()).copyFrom(t);
                            offset += (int) t.numel();
                        }
                    }
                }
            }
            expert.allToAllV(send, sendCounts, recv, recvCounts);
            offset = 0;
            for (int q = 0; q < ep; q++) {
                for (Copy c : copies) {
                    ExpertSlots p = layers.get(c.layer()).placement();
                    int target = toOwner ? c.owner() : c.slot();
                    if (p.deviceOf(target) == me && p.deviceOf(toOwner ? c.slot() : c.owner()) == q) {
                        for (Parameter w : slot(layers.get(c.layer()), target)) {
                            Tensor t = tensor.apply(w);
                            Tensor part = recv.slice(offset, offset + (int) t.numel());
                            if (toOwner) {
                                backend.accumulate(part.reshape(t.shape()), t);
                            } else {
                                t.copyFrom(part);
                            }
                            offset += (int) t.numel();
                        }
                    }
                }
            }
        }
    }

    private boolean holds(MoELayer layer, int physicalSlot) {
        return layer.placement().deviceOf(physicalSlot) == expert.rank();
    }

    /** w1 and w2 of a physical slot of this rank. */
    private List<Parameter> slot(MoELayer layer, int physicalSlot) {
        return layer.slotParameters(localSlot(layer, physicalSlot));
    }

    private int localSlot(MoELayer layer, int physicalSlot) {
        return physicalSlot - expert.rank() * layer.placement().slotsPerDevice();
    }

    /** Elements of w1 + w2 of one slot: the same for every slot of the layer on every EP rank. */
    private static int size(MoELayer layer, Function<Parameter, Tensor> tensor) {
        List<Parameter> mine = layer.slotParameters(0);
        return Math.toIntExact(tensor.apply(mine.get(0)).numel() + tensor.apply(mine.get(1)).numel());
    }

    private static int sum(int[] v) {
        int s = 0;
        for (int x : v) {
            s += x;
        }
        return s;
    }
}
