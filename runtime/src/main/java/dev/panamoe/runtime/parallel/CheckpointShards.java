package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.ExpertSlots;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import dev.panamoe.runtime.train.Checkpoint;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where each parameter of a rank's {@link GptMoeModel} (a single device's too) belongs in the logical model, under the
 * current expert placement. A parameter's name is fixed when the model is built, but an expert
 * slot's content moves with the placement: the slot's tensors are found by identity and named
 * after the expert they hold now ({@code blocks.L.moe.experts.E.w1}), a placement replica's slot
 * is marked a copy, and a free slot belongs to no tensor.
 */
public final class CheckpointShards {
    private CheckpointShards() {
    }

    /** The shard of each of {@code model.shardedParameters()}, in their order. */
    public static List<Checkpoint.Shard> of(GptMoeModel model) {
        record Slot(int expert, boolean copy) {
        }
        Map<Tensor, Slot> slots = new IdentityHashMap<>();
        int epIndex = model.groups().expert().rank();
        for (MoELayer moe : model.moeLayers()) {
            ExpertSlots placement = moe.placement();
            for (int l = 0; l < placement.slotsPerDevice(); l++) {
                int physical = epIndex * placement.slotsPerDevice() + l;
                int e = placement.expertAt(physical);
                Slot slot = new Slot(e, e != ExpertSlots.FREE && placement.slotsOf(e)[0] != physical);
                for (Parameter p : moe.slotParameters(l)) {
                    slots.put(p.value(), slot);
                }
            }
        }
        List<Checkpoint.Shard> shards = new ArrayList<>();
        for (ShardedParameter sp : model.shardedParameters()) {
            Slot slot = slots.get(sp.parameter().value());
            String name = sp.name();
            if (slot == null) {
                shards.add(new Checkpoint.Shard(name, sp.fullShape(), sp.slice(), false));
            } else if (slot.expert() == ExpertSlots.FREE) {
                shards.add(new Checkpoint.Shard(null, sp.fullShape(), sp.slice(), false));
            } else {
                // "blocks.L.moe.experts.<built as>.w1" -> "blocks.L.moe.experts.<held now>.w1"
                String prefix = name.substring(0, name.lastIndexOf("experts.") + "experts.".length());
                String global = prefix + slot.expert() + name.substring(name.lastIndexOf('.'));
                shards.add(new Checkpoint.Shard(global, sp.fullShape(), sp.slice(), slot.copy()));
            }
        }
        return shards;
    }
}
