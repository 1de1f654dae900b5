package dev.panamoe.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

/**
 * A {@link RawDeviceMemory} over host memory, so that device code paths (the caching allocator,
 * tensors reached only through copies, tables and results in device memory) run and are tested
 * without a GPU. Allocations are filled with {@link #POISON}, as fresh device memory holds
 * garbage; every copy and memset is checked against the live allocations (an access outside
 * them, or a free of an unknown address, throws IllegalStateException); a capacity makes malloc
 * run out of memory. Freed memory returns to the host when the emulated device is unreachable.
 */
public final class EmulatedDeviceMemory implements RawDeviceMemory {
    public static final byte POISON = (byte) 0xA5;

    private final Device device;
    private final long capacity;
    private final Arena arena = Arena.ofAuto();
    private final TreeMap<Long, MemorySegment> live = new TreeMap<>();
    private long used;
    private long mallocs;
    private long frees;

    public EmulatedDeviceMemory(Device device, long capacity) {
        this.device = Checks.notNull("device", device);
        this.capacity = capacity;
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public synchronized long malloc(long bytes) {
        if (used + bytes > capacity) {
            throw new DeviceOutOfMemoryException("emulated " + device + ": " + bytes + " bytes do not fit, " + used
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
            throw new IllegalStateException("emulated " + device + ": free of 0x" + Long.toHexString(address)
                    + ", which is not allocated");
        }
        used -= s.byteSize();
        frees++;
    }

    /** The host memory behind [address, address + bytes), which must lie inside one live allocation. */
    public synchronized MemorySegment region(long address, long bytes) {
        Map.Entry<Long, MemorySegment> e = live.floorEntry(address);
        if (e == null || address + bytes > e.getKey() + e.getValue().byteSize()) {
            throw new IllegalStateException("emulated " + device + ": access to 0x" + Long.toHexString(address)
                    + " + " + bytes + " bytes is outside the live allocations");
        }
        return e.getValue().asSlice(address - e.getKey(), bytes);
    }

    /** Bytes currently allocated. */
    public synchronized long used() {
        return used;
    }

    public synchronized int liveAllocations() {
        return live.size();
    }

    public synchronized long mallocs() {
        return mallocs;
    }

    public synchronized long frees() {
        return frees;
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
