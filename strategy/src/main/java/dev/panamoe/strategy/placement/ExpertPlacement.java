package dev.panamoe.strategy.placement;

import java.util.Arrays;

/**
 * Where one MoE layer's logical experts live: {@code devices} expert-parallel ranks, each with
 * {@code slotsPerDevice} physical slots; physical slot p = device * slotsPerDevice + local slot.
 * Every slot holds one logical expert or is free (-1); every expert is in at least one slot,
 * and an expert in several slots is replicated (its tokens are split among the copies).
 *
 * <p>Immutable; a placement change is a new instance. The identity placement puts expert e on
 * device e / (experts / devices), the layout the runtime starts from.
 */
public final class ExpertPlacement {
    public static final int FREE = -1;

    private final int experts;
    private final int devices;
    private final int slotsPerDevice;
    private final int[] slots;
    private final int[][] copies;

    private ExpertPlacement(int experts, int devices, int slotsPerDevice, int[] slots) {
        this.experts = experts;
        this.devices = devices;
        this.slotsPerDevice = slotsPerDevice;
        this.slots = slots;
        int[] count = new int[experts];
        for (int e : slots) {
            if (e != FREE) {
                count[e]++;
            }
        }
        this.copies = new int[experts][];
        for (int e = 0; e < experts; e++) {
            copies[e] = new int[count[e]];
        }
        int[] filled = new int[experts];
        for (int p = 0; p < slots.length; p++) {
            if (slots[p] != FREE) {
                copies[slots[p]][filled[slots[p]]++] = p;
            }
        }
    }

    /**
     * A placement from its slot table (length devices * slotsPerDevice, entries in
     * [-1, experts)), checking that every expert has a slot.
     */
    public static ExpertPlacement of(int experts, int devices, int slotsPerDevice, int[] slotTable) {
        positive("experts", experts);
        positive("devices", devices);
        positive("slotsPerDevice", slotsPerDevice);
        if (slotTable == null || slotTable.length != devices * slotsPerDevice) {
            throw new IllegalArgumentException("slotTable: expected devices * slotsPerDevice = "
                    + devices * slotsPerDevice + " entries, got " + (slotTable == null ? "null" : slotTable.length));
        }
        boolean[] present = new boolean[experts];
        for (int p = 0; p < slotTable.length; p++) {
            int e = slotTable[p];
            if (e < FREE || e >= experts) {
                throw new IllegalArgumentException("slotTable[" + p + "]: " + e + " is outside [-1, experts=" + experts
                        + ")");
            }
            if (e != FREE) {
                present[e] = true;
            }
        }
        for (int e = 0; e < experts; e++) {
            if (!present[e]) {
                throw new IllegalArgumentException("slotTable: expert " + e + " has no slot");
            }
        }
        return new ExpertPlacement(experts, devices, slotsPerDevice, slotTable.clone());
    }

    /**
     * experts / devices experts per device in order, plus extraSlots free slots per device
     * (room for replicas).
     */
    public static ExpertPlacement identity(int experts, int devices, int extraSlots) {
        positive("experts", experts);
        positive("devices", devices);
        if (experts % devices != 0) {
            throw new IllegalArgumentException("devices: " + devices + " does not divide experts " + experts);
        }
        if (extraSlots < 0) {
            throw new IllegalArgumentException("extraSlots: must be >= 0, got " + extraSlots);
        }
        int perDevice = experts / devices;
        int s = perDevice + extraSlots;
        int[] table = new int[devices * s];
        Arrays.fill(table, FREE);
        for (int e = 0; e < experts; e++) {
            table[(e / perDevice) * s + e % perDevice] = e;
        }
        return new ExpertPlacement(experts, devices, s, table);
    }

    public int experts() {
        return experts;
    }

    public int devices() {
        return devices;
    }

    public int slotsPerDevice() {
        return slotsPerDevice;
    }

    public int physicalSlots() {
        return slots.length;
    }

    /** The logical expert in physical slot p, or FREE. */
    public int expertAt(int physicalSlot) {
        return slots[physicalSlot];
    }

    public int deviceOf(int physicalSlot) {
        return physicalSlot / slotsPerDevice;
    }

    /** The physical slots holding expert e, ascending. */
    public int[] slotsOf(int expert) {
        return copies[expert].clone();
    }

    public int copies(int expert) {
        return copies[expert].length;
    }

    public int[] slotTable() {
        return slots.clone();
    }

    /** A placement with slot p holding expert (or FREE) instead. */
    public ExpertPlacement withSlot(int physicalSlot, int expert) {
        int[] table = slots.clone();
        table[physicalSlot] = expert;
        return of(experts, devices, slotsPerDevice, table);
    }

    /**
     * Each device's load when expert e receives expertLoad[e] tokens, split evenly among its
     * copies.
     */
    public double[] deviceLoads(long[] expertLoad) {
        if (expertLoad.length != experts) {
            throw new IllegalArgumentException("expertLoad: expected " + experts + " entries, got " + expertLoad.length);
        }
        double[] load = new double[devices];
        for (int e = 0; e < experts; e++) {
            double share = (double) expertLoad[e] / copies[e].length;
            for (int p : copies[e]) {
                load[deviceOf(p)] += share;
            }
        }
        return load;
    }

    /** Number of physical slots whose expert differs from other's (same shape required). */
    public int changedSlots(ExpertPlacement other) {
        if (other.experts != experts || other.devices != devices || other.slotsPerDevice != slotsPerDevice) {
            throw new IllegalArgumentException("other: placement shape " + other.shape() + " differs from " + shape());
        }
        int changed = 0;
        for (int p = 0; p < slots.length; p++) {
            changed += slots[p] != other.slots[p] ? 1 : 0;
        }
        return changed;
    }

    private String shape() {
        return experts + " experts on " + devices + " x " + slotsPerDevice + " slots";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ExpertPlacement p && p.experts == experts && p.devices == devices
                && p.slotsPerDevice == slotsPerDevice && Arrays.equals(p.slots, slots);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(slots) * 31 + experts;
    }

    @Override
    public String toString() {
        return shape() + " " + Arrays.toString(slots);
    }

    private static void positive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(name + ": must be >= 1, got " + v);
        }
    }
}
