package dev.panamoe.ops;

/**
 * Where a {@link CachingAllocator} gets its blocks and gives them back: a device's cudaMalloc /
 * cudaFree ({@link RawDeviceMemory}), or the host's C allocator ({@link HostBlocks}). Addresses
 * are longs.
 */
public interface BlockSource {
    Device device();

    /** Allocates bytes; throws {@link DeviceOutOfMemoryException} when there is no room. */
    long malloc(long bytes);

    void free(long address);
}
