package dev.panamoe.ops;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Host memory blocks for the {@link CachingAllocator} of the CPU's tensors: the C library's
 * aligned_alloc and free, {@link TensorMemory#ALIGNMENT}-aligned and left uninitialised.
 */
@SuppressWarnings("restricted") // calls the C library's allocator
final class HostBlocks implements BlockSource {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle ALIGNED_ALLOC = LINKER.downcallHandle(
            LINKER.defaultLookup().findOrThrow("aligned_alloc"),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow("free"),
            FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public long malloc(long bytes) {
        // aligned_alloc takes a whole number of alignments.
        long size = Math.max(1, (bytes + TensorMemory.ALIGNMENT - 1) / TensorMemory.ALIGNMENT) * TensorMemory.ALIGNMENT;
        MemorySegment block;
        try {
            block = (MemorySegment) ALIGNED_ALLOC.invokeExact(TensorMemory.ALIGNMENT, size);
        } catch (Throwable e) {
            throw new IllegalStateException("aligned_alloc(" + TensorMemory.ALIGNMENT + ", " + size + ") failed", e);
        }
        if (block.address() == 0) {
            throw new DeviceOutOfMemoryException("cpu: out of host memory allocating " + bytes + " bytes", null);
        }
        return block.address();
    }

    @Override
    public void free(long address) {
        try {
            FREE.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable e) {
            throw new IllegalStateException("free(0x" + Long.toHexString(address) + ") failed", e);
        }
    }
}
