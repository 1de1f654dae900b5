package dev.panamoe.ops;

import java.lang.foreign.MemorySegment;

/**
 * The raw operations of one device's memory that {@link CachingAllocator} and
 * {@link DeviceMemory} build on: cudaMalloc/cudaFree and stream-ordered copies on a GPU, a fake
 * over host memory in the tests. Addresses are device addresses as longs; a stream is an opaque
 * handle as a long (0: the default stream).
 */
public interface RawDeviceMemory extends BlockSource {

    /** Sets bytes at address to value, ordered on the stream. */
    void memset(long address, int value, long bytes, long stream);

    /** Copies native host memory to the device, ordered on the stream; host may be reused on return. */
    void copyFromHost(MemorySegment host, long dst, long bytes, long stream);

    /** Copies device memory to native host memory after the stream's earlier work; complete on return. */
    void copyToHost(long src, MemorySegment host, long bytes, long stream);

    /** Copies between two device addresses, ordered on the stream. */
    void copy(long src, long dst, long bytes, long stream);
}
