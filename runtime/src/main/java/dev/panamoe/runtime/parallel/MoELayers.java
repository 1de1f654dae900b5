package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.ExpertSlots;
import dev.panamoe.ops.GroupSum;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.Arrays;

/**
 * Builds the {@link MoELayer} of one rank of a plan: its groups over the rank's communicators
 * (sums over DATA, TENSOR and EXPERT_DATA; the all-to-all token exchange over EXPERT), its slots
 * from a strategy {@link ExpertPlacement}, and its parameters sharded from the full
 * single-device values ({@link ExpertShards}), so that a hybrid run starts exactly where one
 * device would.
 */
public final class MoELayers {
    /** The full-value name of the gate ("router.weight" in the layer). */
    public static final String GATE = "gate";

    private MoELayers() {
    }

    /**
     * The full (single-device, unsharded) value of a layer parameter, row-major, by its name
     * ("gate" [hidden, experts], "experts.e.w1" [hidden, act.inputWidth(ffn)], "experts.e.w2"
     * [ffn, hidden]) and full shape.
     */
    @FunctionalInterface
    public interface FullParameters {
        float[] value(String name, int[] shape);

        /** The values of a single-device layer. */
        static FullParameters of(MoELayer layer) {
            return (name, shape) -> {
                if (name.equals(GATE)) {
                    return layer.router().weight().value().toFloatArray();
                }
                int e = expertOfName(name);
                return (name.endsWith(".w1") ? layer.experts().w1(e) : layer.experts().w2(e)).value().toFloatArray();
            };
        }
    }

    /** The layer under the identity placement (experts / ep consecutive experts per EP rank). */
    public static MoELayer create(Backend backend, MoELayer.Config config, ProcessGroups groups, FullParameters init) {
        require(config != null && groups != null, "config, groups: must not be null");
        return create(backend, config, groups, ExpertPlacement.identity(config.experts(), groups.plan().ep(), 0), init);
    }

    /** The layer with the experts of placement (devices = ep), loaded from init. */
    public static MoELayer create(Backend backend, MoELayer.Config config, ProcessGroups groups,
            ExpertPlacement placement, FullParameters init) {
        require(config != null && groups != null && init != null, "config, groups, init: must not be null");
        MoELayer.Groups sums = new MoELayer.Groups(new Sum(backend, groups.data()), new Sum(backend, groups.tensor()),
                new Sum(backend, groups.expertData()), new AllToAllExchange(groups.expert()));
        MoELayer layer = new MoELayer(backend, config, sums, slots(placement));
        try {
            loadParameters(layer, init);
        } catch (RuntimeException e) {
            layer.close();
            throw e;
        }
        return layer;
    }

    /** placement as the layer sees it. */
    public static ExpertSlots slots(ExpertPlacement placement) {
        require(placement != null, "placement: must not be null");
        return new Slots(placement);
    }

    /** The strategy placement of a layer built here. */
    public static ExpertPlacement placement(MoELayer layer) {
        if (layer.placement() instanceof Slots s) {
            return s.placement();
        }
        throw new IllegalArgumentException("layer: not a layer of a plan (its placement is " + layer.placement() + ")");
    }

    /**
     * Sets the gate and this rank's TP shards of its experts from the full values (gradients are
     * left as they are), and a bf16 layer's working copies from them. GptMoeModel-style
     * initialisation: pass the model's by-name values.
     */
    public static void loadParameters(MoELayer layer, FullParameters full) {
        require(full != null, "full: must not be null");
        MoELayer.Config config = layer.config();
        int hidden = config.hidden();
        int ffn = config.ffn();
        int tp = layer.groups().tensor().size();
        int t = layer.groups().tensor().rank();
        layer.router().weight().value().copyFrom(fullValue(full, GATE, hidden, config.experts()));
        int[] local = layer.localExperts();
        for (int l = 0; l < local.length; l++) {
            int e = local[l];
            if (e != ExpertSlots.FREE) {
                float[] w1 = fullValue(full, "experts." + e + ".w1", hidden, config.activation().inputWidth(ffn));
                float[] w2 = fullValue(full, "experts." + e + ".w2", ffn, hidden);
                layer.experts().w1(l).value().copyFrom(ExpertShards.shardW1(w1, hidden, ffn, config.activation(), t, tp));
                layer.experts().w2(l).value().copyFrom(ExpertShards.shardW2(w2, ffn, hidden, t, tp));
            }
        }
        layer.refreshWorkingCopies();
    }

    private static float[] fullValue(FullParameters full, String name, int... shape) {
        float[] v = full.value(name, shape.clone());
        long n = (long) shape[0] * shape[1];
        require(v != null && v.length == n, "full." + name + ": expected " + n + " values for shape "
                + Arrays.toString(shape) + ", got " + (v == null ? "null" : v.length));
        return v;
    }

    private static int expertOfName(String name) {
        String[] parts = name.split("\\.");
        require(parts.length == 3 && parts[0].equals("experts"), "name: not an expert parameter: " + name);
        return Integer.parseInt(parts[1]);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /**
     * A sum over a communicator's ranks; one rank sums nothing. bf16 tensors (a bf16 layer's
     * partial expert outputs and input gradients over TENSOR) are added in f32 and rounded once,
     * as communication never sums bf16; everything else the layer sums is f32 or i32.
     */
    private record Sum(Backend backend, Communicator group) implements GroupSum {
        @Override
        public int size() {
            return group.size();
        }

        @Override
        public int rank() {
            return group.rank();
        }

        @Override
        public void sum(Tensor t) {
            if (group.size() == 1) {
                return;
            }
            if (t.dtype() != DType.BF16) {
                group.allReduce(t);
                return;
            }
            try (TensorScope scope = TensorScope.confined(backend)) {
                Tensor wide = scope.allocate("bf16 sum", DType.F32, t.shape());
                backend.convert(t, wide);
                group.allReduce(wide);
                backend.convert(wide, t);
            }
        }
    }

    /** A strategy placement as the layer's slots. */
    private record Slots(ExpertPlacement placement) implements ExpertSlots {
        @Override
        public int experts() {
            return placement.experts();
        }

        @Override
        public int devices() {
            return placement.devices();
        }

        @Override
        public int slotsPerDevice() {
            return placement.slotsPerDevice();
        }

        @Override
        public int expertAt(int physicalSlot) {
            return placement.expertAt(physicalSlot);
        }

        @Override
        public int[] slotsOf(int expert) {
            return placement.slotsOf(expert);
        }

        @Override
        public String toString() {
            return placement.toString();
        }
    }
}
