package dev.panamoe.bindings;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfInt;

/** Layout and accessors of {@code struct pmoe_dispatch_config} in panamoe.h (jextract shape). */
public final class pmoe_dispatch_config {
    private pmoe_dispatch_config() {}

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
            panamoe_h.C_INT.withName("tokens"),
            panamoe_h.C_INT.withName("top_k"),
            panamoe_h.C_INT.withName("logical_experts"),
            panamoe_h.C_INT.withName("physical_experts"),
            panamoe_h.C_INT.withName("capacity"),
            panamoe_h.C_INT.withName("drop_policy"))
            .withName("pmoe_dispatch_config");

    public static GroupLayout layout() {
        return $LAYOUT;
    }

    public static long sizeof() {
        return $LAYOUT.byteSize();
    }

    /** A struct from the allocator (zero-filled when the allocator is an Arena). */
    public static MemorySegment allocate(SegmentAllocator allocator) {
        return allocator.allocate($LAYOUT);
    }

    private static final OfInt tokens$LAYOUT = (OfInt) $LAYOUT.select(groupElement("tokens"));
    private static final long tokens$OFFSET = $LAYOUT.byteOffset(groupElement("tokens"));

    public static OfInt tokens$layout() {
        return tokens$LAYOUT;
    }

    public static long tokens$offset() {
        return tokens$OFFSET;
    }

    public static int tokens(MemorySegment struct) {
        return struct.get(tokens$LAYOUT, tokens$OFFSET);
    }

    public static void tokens(MemorySegment struct, int value) {
        struct.set(tokens$LAYOUT, tokens$OFFSET, value);
    }

    private static final OfInt top_k$LAYOUT = (OfInt) $LAYOUT.select(groupElement("top_k"));
    private static final long top_k$OFFSET = $LAYOUT.byteOffset(groupElement("top_k"));

    public static OfInt top_k$layout() {
        return top_k$LAYOUT;
    }

    public static long top_k$offset() {
        return top_k$OFFSET;
    }

    public static int top_k(MemorySegment struct) {
        return struct.get(top_k$LAYOUT, top_k$OFFSET);
    }

    public static void top_k(MemorySegment struct, int value) {
        struct.set(top_k$LAYOUT, top_k$OFFSET, value);
    }

    private static final OfInt logical_experts$LAYOUT = (OfInt) $LAYOUT.select(groupElement("logical_experts"));
    private static final long logical_experts$OFFSET = $LAYOUT.byteOffset(groupElement("logical_experts"));

    public static OfInt logical_experts$layout() {
        return logical_experts$LAYOUT;
    }

    public static long logical_experts$offset() {
        return logical_experts$OFFSET;
    }

    public static int logical_experts(MemorySegment struct) {
        return struct.get(logical_experts$LAYOUT, logical_experts$OFFSET);
    }

    public static void logical_experts(MemorySegment struct, int value) {
        struct.set(logical_experts$LAYOUT, logical_experts$OFFSET, value);
    }

    private static final OfInt physical_experts$LAYOUT = (OfInt) $LAYOUT.select(groupElement("physical_experts"));
    private static final long physical_experts$OFFSET = $LAYOUT.byteOffset(groupElement("physical_experts"));

    public static OfInt physical_experts$layout() {
        return physical_experts$LAYOUT;
    }

    public static long physical_experts$offset() {
        return physical_experts$OFFSET;
    }

    public static int physical_experts(MemorySegment struct) {
        return struct.get(physical_experts$LAYOUT, physical_experts$OFFSET);
    }

    public static void physical_experts(MemorySegment struct, int value) {
        struct.set(physical_experts$LAYOUT, physical_experts$OFFSET, value);
    }

    private static final OfInt capacity$LAYOUT = (OfInt) $LAYOUT.select(groupElement("capacity"));
    private static final long capacity$OFFSET = $LAYOUT.byteOffset(groupElement("capacity"));

    public static OfInt capacity$layout() {
        return capacity$LAYOUT;
    }

    public static long capacity$offset() {
        return capacity$OFFSET;
    }

    public static int capacity(MemorySegment struct) {
        return struct.get(capacity$LAYOUT, capacity$OFFSET);
    }

    public static void capacity(MemorySegment struct, int value) {
        struct.set(capacity$LAYOUT, capacity$OFFSET, value);
    }

    private static final OfInt drop_policy$LAYOUT = (OfInt) $LAYOUT.select(groupElement("drop_policy"));
    private static final long drop_policy$OFFSET = $LAYOUT.byteOffset(groupElement("drop_policy"));

    public static OfInt drop_policy$layout() {
        return drop_policy$LAYOUT;
    }

    public static long drop_policy$offset() {
        return drop_policy$OFFSET;
    }

    public static int drop_policy(MemorySegment struct) {
        return struct.get(drop_policy$LAYOUT, drop_policy$OFFSET);
    }

    public static void drop_policy(MemorySegment struct, int value) {
        struct.set(drop_policy$LAYOUT, drop_policy$OFFSET, value);
    }
}
