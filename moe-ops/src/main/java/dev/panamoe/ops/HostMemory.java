package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@link TensorMemory} of a scope on the CPU: blocks of the backend's host
 * {@link CachingAllocator}, returned to its cache when the scope closes. Each block is seen
 * through a segment of the scope's arena, so a tensor of a closed scope cannot be read (the
 * arena checks it) even though its block lives on in the cache; a confined scope's segments are
 * confined to its thread, as the arena's. Copies are MemorySegment.copy.
 */
final class HostMemory implements TensorMemory {
    private final CachingAllocator allocator;
    private final Arena arena;
    private final List<CachingAllocator.Block> blocks = new ArrayList<>();

    HostMemory(CachingAllocator allocator, Arena arena) {
        this.allocator = Checks.notNull("allocator", allocator);
        this.arena = Checks.notNull("arena", arena);
    }

    @Override
    public MemorySegment allocate(long bytes) {
        MemorySegment segment = allocateUninitialized(bytes);
        segment.fill((byte) 0); // a cached block holds its last owner's data
        return segment;
    }

    @Override
    @SuppressWarnings("restricted") // the block is at least bytes long and lives until close
    public MemorySegment allocateUninitialized(long bytes) {
        CachingAllocator.Block block;
        synchronized (blocks) {
            if (!isOpen()) {
                throw new IllegalStateException("host memory of a closed tensor scope; cannot allocate " + bytes + " bytes");
            }
            block = allocator.allocate(bytes, 0);
            blocks.add(block);
        }
        return MemorySegment.ofAddress(block.address()).reinterpret(bytes, arena, null);
    }

    @Override
    public boolean isOpen() {
        return arena.scope().isAlive();
    }

    @Override
    public boolean hostAccessible() {
        return true;
    }

    @Override
    public void copyFromHost(MemorySegment host, MemorySegment dst, long bytes) {
        MemorySegment.copy(host, 0, dst, 0, bytes);
    }

    @Override
    public void copyToHost(MemorySegment src, MemorySegment host, long bytes) {
        MemorySegment.copy(src, 0, host, 0, bytes);
    }

    @Override
    public void copy(MemorySegment src, MemorySegment dst, long bytes) {
        MemorySegment.copy(src, 0, dst, 0, bytes);
    }

    @Override
    public void zero(MemorySegment dst, long bytes) {
        dst.asSlice(0, bytes).fill((byte) 0);
    }

    /** Closes the arena first (no segment of this scope is usable after it), then frees the blocks. */
    @Override
    public void close() {
        synchronized (blocks) {
            if (isOpen()) {
                arena.close();
                blocks.forEach(allocator::free);
                blocks.clear();
            }
        }
    }
}
