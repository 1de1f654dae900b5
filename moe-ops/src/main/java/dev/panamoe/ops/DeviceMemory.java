package dev.panamoe.ops;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@link TensorMemory} of a scope on a device: blocks of a {@link CachingAllocator}, used on
 * one stream and returned to the allocator's cache when the scope closes. Thread-safe (a
 * confined scope on a device is not tied to its thread). Copies into host memory block until
 * the stream has run up to them, and are counted in the backend's {@link HostSyncs}; everything
 * else is queued on the stream.
 */
final class DeviceMemory implements TensorMemory {
    private final CachingAllocator allocator;
    private final RawDeviceMemory raw;
    private final long stream;
    private final HostSyncs syncs;
    private final List<CachingAllocator.Block> blocks = new ArrayList<>();
    private volatile boolean open = true;

    DeviceMemory(CachingAllocator allocator, RawDeviceMemory raw, long stream, HostSyncs syncs) {
        this.allocator = allocator;
        this.raw = raw;
        this.stream = stream;
        this.syncs = syncs;
    }

    @Override
    public MemorySegment allocate(long bytes) {
        MemorySegment segment = allocateUninitialized(bytes);
        zero(segment, bytes); // a cached block holds its last owner's data
        return segment;
    }

    @Override
    public synchronized MemorySegment allocateUninitialized(long bytes) {
        if (!open) {
            throw new IllegalStateException("device memory of a closed tensor scope on " + raw.device()
                    + "; cannot allocate " + bytes + " bytes");
        }
        CachingAllocator.Block block = allocator.allocate(bytes, stream);
        blocks.add(block);
        return MemorySegment.ofAddress(block.address());
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public boolean hostAccessible() {
        return false;
    }

    @Override
    public void copyFromHost(MemorySegment host, MemorySegment dst, long bytes) {
        syncs.enqueued();
        raw.copyFromHost(host, dst.address(), bytes, stream);
    }

    @Override
    public void copyToHost(MemorySegment src, MemorySegment host, long bytes) {
        raw.copyToHost(src.address(), host, bytes, stream);
        syncs.blocked("copy to host");
    }

    @Override
    public void copy(MemorySegment src, MemorySegment dst, long bytes) {
        syncs.enqueued();
        raw.copy(src.address(), dst.address(), bytes, stream);
    }

    @Override
    public void zero(MemorySegment dst, long bytes) {
        syncs.enqueued();
        raw.memset(dst.address(), 0, bytes, stream);
    }

    @Override
    public synchronized void close() {
        if (open) {
            open = false;
            blocks.forEach(allocator::free);
            blocks.clear();
        }
    }
}
