package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The memory one {@link TensorScope} allocates its tensors from, and the copies between it and
 * the host: blocks of a {@link CachingAllocator}, of host memory on the CPU, of device memory on
 * a CUDA device. Closing it returns everything it allocated to the allocator's cache.
 *
 * <p>A device segment is a zero-length segment at the device address: it can be handed to a
 * kernel, and host code that tries to read it fails with IndexOutOfBoundsException instead of
 * dereferencing a device address. Host code reads and writes device memory only through the
 * copies here.
 */
public interface TensorMemory extends AutoCloseable {
    /** Allocation alignment: a cache line, and what the vector kernels like. */
    long ALIGNMENT = 64;

    /**
     * Host memory: blocks of allocator, seen through segments of arena; closing the memory
     * closes the arena and returns the blocks to the allocator's cache.
     */
    static TensorMemory host(CachingAllocator allocator, Arena arena) {
        return new HostMemory(allocator, arena);
    }

    /** bytes of zero-filled memory, {@link #ALIGNMENT}-aligned. */
    MemorySegment allocate(long bytes);

    /**
     * bytes of memory whose contents are undefined until written (whatever the cached block
     * held), for outputs a kernel overwrites whole: saves the memset of {@link #allocate}.
     */
    default MemorySegment allocateUninitialized(long bytes) {
        return allocate(bytes);
    }

    boolean isOpen();

    /** Whether host code may read and write the segments of {@link #allocate} directly. */
    boolean hostAccessible();

    /** Bytes [offset, offset + bytes) of a segment of this memory. */
    default MemorySegment slice(MemorySegment segment, long offset, long bytes) {
        return hostAccessible() ? segment.asSlice(offset, bytes) : MemorySegment.ofAddress(segment.address() + offset);
    }

    /** Copies bytes of native host memory into dst; host may be reused when this returns. */
    void copyFromHost(MemorySegment host, MemorySegment dst, long bytes);

    /** Copies bytes of src into native host memory; they are there when this returns. */
    void copyToHost(MemorySegment src, MemorySegment host, long bytes);

    /** Copies bytes between two segments of this memory's device (in order with the kernels). */
    void copy(MemorySegment src, MemorySegment dst, long bytes);

    /** Sets bytes of dst to zero (in order with the kernels). */
    void zero(MemorySegment dst, long bytes);

    /** Returns what this memory allocated to the allocator's cache; closing twice does nothing. */
    @Override
    void close();
}
