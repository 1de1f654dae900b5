package dev.panamoe.ops;

/**
 * Where an MoE layer's logical experts sit: devices (the ranks of the EXPERT group) with the
 * same number of physical slots each, numbered device by device (slot p is on device
 * p / slotsPerDevice); a slot is {@link #FREE} or holds one expert, every expert is in at least
 * one slot, and an expert in several slots is replicated. The runtime adapts its placements
 * (strategy's ExpertPlacement) to it; {@link #oneDevice} is the single-device layer's.
 */
public interface ExpertSlots {
    int FREE = -1;

    int experts();

    int devices();

    int slotsPerDevice();

    /** The expert in physical slot p, or FREE. */
    int expertAt(int physicalSlot);

    /** The physical slots holding expert e, ascending (the first is its owner). */
    int[] slotsOf(int expert);

    default int physicalSlots() {
        return devices() * slotsPerDevice();
    }

    default int deviceOf(int physicalSlot) {
        return physicalSlot / slotsPerDevice();
    }

    default int copies(int expert) {
        return slotsOf(expert).length;
    }

    /** Every expert in one slot of one device, expert e in slot e. */
    static ExpertSlots oneDevice(int experts) {
        Checks.atLeast("experts", experts, 1);
        return new ExpertSlots() {
            @Override
            public int experts() {
                return experts;
            }

            @Override
            public int devices() {
                return 1;
            }

            @Override
            public int slotsPerDevice() {
                return experts;
            }

            @Override
            public int expertAt(int physicalSlot) {
                Checks.require(physicalSlot >= 0 && physicalSlot < experts,
                        "physicalSlot: must be in [0, " + experts + "), got " + physicalSlot);
                return physicalSlot;
            }

            @Override
            public int[] slotsOf(int expert) {
                Checks.require(expert >= 0 && expert < experts, "expert: must be in [0, " + experts + "), got " + expert);
                return new int[] {expert};
            }

            @Override
            public String toString() {
                return "one device, expert e in slot e of " + experts;
            }
        };
    }
}
