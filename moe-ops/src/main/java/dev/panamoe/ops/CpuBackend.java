package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The reference backend: host memory from a {@link CachingAllocator} (holding at most the most
 * bytes ever in use at once), kernels from an implementation of panamoe.h that works on host
 * pointers — libpanamoe_cpu.so by default, or any other such library (e.g. the CUDA sources
 * built for host execution) via {@link #CpuBackend(panamoe_h)}.
 * The calls and their checks are {@link NativeBackend}'s.
 */
public final class CpuBackend extends NativeBackend {
    private static volatile CpuBackend instance;
    private final CachingAllocator allocator = CachingAllocator.boundedByPeak(new HostBlocks());

    public CpuBackend(panamoe_h lib) {
        super(lib, true);
    }

    /** The backend of libpanamoe_cpu.so (loaded on first use). */
    public static CpuBackend get() {
        CpuBackend b = instance;
        if (b == null) {
            synchronized (CpuBackend.class) {
                b = instance;
                if (b == null) {
                    b = new CpuBackend(panamoe_h.cpu());
                    instance = b;
                }
            }
        }
        return b;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public TensorMemory openMemory(boolean shared) {
        return TensorMemory.host(allocator, shared ? Arena.ofShared() : Arena.ofConfined());
    }

    /** The cache of host memory behind this backend's tensor scopes. */
    public CachingAllocator allocator() {
        return allocator;
    }

    @Override
    MemorySegment stream() {
        return MemorySegment.NULL;
    }
}
