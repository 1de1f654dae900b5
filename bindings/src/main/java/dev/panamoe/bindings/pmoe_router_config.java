package dev.panamoe.bindings;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfInt;

/** Layout and accessors of {@code struct pmoe_router_config} in panamoe.h (jextract shape). */
public final class pmoe_router_config {
    private pmoe_router_config() {}

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
            panamoe_h.C_INT.withName("tokens"),
            panamoe_h.C_INT.withName("experts"),
            panamoe_h.C_INT.withName("top_k"),
            panamoe_h.C_INT.withName("score_func"),
            panamoe_h.C_INT.withName("renormalize"),
            panamoe_h.C_INT.withName("reserved"))
            .withName("pmoe_router_config");

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

    private static final OfInt experts$LAYOUT = (OfInt) $LAYOUT.select(groupElement("experts"));
    private static final long experts$OFFSET = $LAYOUT.byteOffset(groupElement("experts"));

    public static OfInt experts$layout() {
        return experts$LAYOUT;
    }

    public static long experts$offset() {
        return experts$OFFSET;
    }

    public static int experts(MemorySegment struct) {
        return struct.get(experts$LAYOUT, experts$OFFSET);
    }

    public static void experts(MemorySegment struct, int value) {
        struct.set(experts$LAYOUT, experts$OFFSET, value);
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

    private static final OfInt score_func$LAYOUT = (OfInt) $LAYOUT.select(groupElement("score_func"));
    private static final long score_func$OFFSET = $LAYOUT.byteOffset(groupElement("score_func"));

    public static OfInt score_func$layout() {
        return score_func$LAYOUT;
    }

    public static long score_func$offset() {
        return score_func$OFFSET;
    }

    public static int score_func(MemorySegment struct) {
        return struct.get(score_func$LAYOUT, score_func$OFFSET);
    }

    public static void score_func(MemorySegment struct, int value) {
        struct.set(score_func$LAYOUT, score_func$OFFSET, value);
    }

    private static final OfInt renormalize$LAYOUT = (OfInt) $LAYOUT.select(groupElement("renormalize"));
    private static final long renormalize$OFFSET = $LAYOUT.byteOffset(groupElement("renormalize"));

    public static OfInt renormalize$layout() {
        return renormalize$LAYOUT;
    }

    public static long renormalize$offset() {
        return renormalize$OFFSET;
    }

    public static int renormalize(MemorySegment struct) {
        return struct.get(renormalize$LAYOUT, renormalize$OFFSET);
    }

    public static void renormalize(MemorySegment struct, int value) {
        struct.set(renormalize$LAYOUT, renormalize$OFFSET, value);
    }

    private static final OfInt reserved$LAYOUT = (OfInt) $LAYOUT.select(groupElement("reserved"));
    private static final long reserved$OFFSET = $LAYOUT.byteOffset(groupElement("reserved"));

    public static OfInt reserved$layout() {
        return reserved$LAYOUT;
    }

    public static long reserved$offset() {
        return reserved$OFFSET;
    }

    public static int reserved(MemorySegment struct) {
        return struct.get(reserved$LAYOUT, reserved$OFFSET);
    }

    public static void reserved(MemorySegment struct, int value) {
        struct.set(reserved$LAYOUT, reserved$OFFSET, value);
    }
}
