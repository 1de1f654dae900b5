package dev.panamoe.bindings;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;

/** {@code typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;} in jextract's shape. */
public final class ncclUniqueId {
    private ncclUniqueId() {}

    private static final GroupLayout LAYOUT = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(nccl_h.NCCL_UNIQUE_ID_BYTES, ValueLayout.JAVA_BYTE).withName("internal"))
            .withName("ncclUniqueId");

    public static GroupLayout layout() {
        return LAYOUT;
    }

    public static long sizeof() {
        return LAYOUT.byteSize();
    }

    public static MemorySegment allocate(SegmentAllocator allocator) {
        return allocator.allocate(LAYOUT);
    }

    public static long internal$offset() {
        return 0;
    }

    /** The id's bytes (a slice of s). */
    public static MemorySegment internal(MemorySegment s) {
        return s.asSlice(0, nccl_h.NCCL_UNIQUE_ID_BYTES);
    }
}
