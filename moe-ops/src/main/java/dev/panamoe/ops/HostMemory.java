package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** Host memory: direct access, copies are MemorySegment.copy. */
final class HostMemory implements TensorMemory {
    private final Arena arena;

    HostMemory(Arena arena) {
        this.arena = Checks.notNull("arena", arena);
    }

    @Override
    public MemorySegment allocate(long bytes) {
        return arena.allocate(bytes, ALIGNMENT);
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

    @Override
    public void close() {
        if (isOpen()) {
            arena.close();
        }
    }
}
