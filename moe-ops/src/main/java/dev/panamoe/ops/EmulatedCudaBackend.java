package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.MemorySegment;

/**
 * A CUDA device emulated on the host, for running and testing code above the backend without a
 * GPU: libpanamoe_cpu.so's kernels on tensors in {@link EmulatedDeviceMemory} behind a
 * {@link CachingAllocator}, exactly as {@link CudaBackend} holds them (zero-length device
 * segments, host access only through copies, tables and scalar results in device memory), so
 * results are bitwise the CPU backend's. Its device is {@code cuda:0}; do not mix its tensors
 * with a real CudaBackend's. Its {@link #hostSyncs()} counts where a GPU would make the host
 * wait, as CudaBackend's does: the emulated copies are synchronous, but only a copy into host
 * memory would block on a GPU.
 */
public final class EmulatedCudaBackend extends NativeBackend {
    private static final long STREAM = 0x5; // any handle: the emulated copies are synchronous

    private final EmulatedDeviceMemory memory;
    private final CachingAllocator allocator;

    /** An emulated cuda:0 with capacity bytes of memory, with value checks as a real device's. */
    public EmulatedCudaBackend(long capacity) {
        this(capacity, deviceDebugChecks());
    }

    /** ... with the host-side value checks of the debug mode on or off ({@link Backend#checksValuesOnHost()}). */
    public EmulatedCudaBackend(long capacity, boolean valueChecks) {
        super(panamoe_h.cpu(), valueChecks);
        this.memory = new EmulatedDeviceMemory(Device.cuda(0), capacity);
        this.allocator = new CachingAllocator(memory);
    }

    @Override
    public String name() {
        return "emulated-cuda";
    }

    @Override
    public Device device() {
        return memory.device();
    }

    @Override
    public TensorMemory openMemory(boolean shared) {
        return new DeviceMemory(allocator, memory, STREAM, hostSyncs());
    }

    @Override
    MemorySegment stream() {
        return MemorySegment.NULL; // the CPU kernels run on the calling thread
    }

    public EmulatedDeviceMemory memory() {
        return memory;
    }

    public CachingAllocator allocator() {
        return allocator;
    }
}
