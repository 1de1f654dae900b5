package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

/**
 * A {@link RawDeviceMemory} over host memory, for testing the allocator and device tensors on
 * the CPU: allocations come from a shared arena, filled with a poison byte as fresh device memory
 * holds garbage; every access is checked against the live allocations (an access outside them,
 * or a free of an unknown address, fails the test); a capacity makes malloc run out of memory.
 */
final class FakeDeviceMemory implements RawDeviceMemory {
    static final byte POISON = (byte) 0xA5;

    private final Device device;
    private final long capacity;
    private final Arena arena = Arena.ofShared();
    private final TreeMap<Long, MemorySegment> live = new TreeMap<>();
    private long used;
    int mallocs;
    int frees;

    FakeDeviceMemory(Device device, long capacity) {
        this.device = device;
        this.capacity = capacity;
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public synchronized long malloc(long bytes) {
        if (used + bytes > capacity) {
            throw new DeviceOutOfMemoryException("fake " + device + ": " + bytes + " bytes do not fit, " + used
                    + " of " + capacity + " in use", null);
        }
        MemorySegment s = arena.allocate(bytes, 256);
        s.fill(POISON);
        live.put(s.address(), s);
        used += bytes;
        mallocs++;
        return s.address();
    }

    @Override
    public synchronized void free(long address) {
        MemorySegment s = live.remove(address);
        if (s == null) {
            throw new AssertionError("free of an address that is not allocated: 0x" + Long.toHexString(address));
        }
        used -= s.byteSize();
        frees++;
    }

    /** The host memory behind [address, address + bytes), which must lie inside one live allocation. */
    synchronized MemorySegment region(long address, long bytes) {
        Map.Entry<Long, MemorySegment> e = live.floorEntry(address);
        if (e == null || address + bytes > e.getKey() + e.getValue().byteSize()) {
            throw new AssertionError("device access outside the live allocations: 0x" + Long.toHexString(address)
                    + " + " + bytes);
        }
        return e.getValue().asSlice(address - e.getKey(), bytes);
    }

    synchronized long used() {
        return used;
    }

    synchronized int liveAllocations() {
        return live.size();
    }

    @Override
    public void memset(long address, int value, long bytes, long stream) {
        region(address, bytes).fill((byte) value);
    }

    @Override
    public void copyFromHost(MemorySegment host, long dst, long bytes, long stream) {
        MemorySegment.copy(host, 0, region(dst, bytes), 0, bytes);
    }

    @Override
    public void copyToHost(long src, MemorySegment host, long bytes, long stream) {
        MemorySegment.copy(region(src, bytes), 0, host, 0, bytes);
    }

    @Override
    public void copy(long src, long dst, long bytes, long stream) {
        MemorySegment.copy(region(src, bytes), 0, region(dst, bytes), 0, bytes);
    }
}
