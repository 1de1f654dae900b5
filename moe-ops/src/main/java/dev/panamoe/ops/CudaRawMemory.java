package dev.panamoe.ops;

import dev.panamoe.bindings.CudaException;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.CudaRuntime.CopyKind;
import java.lang.foreign.MemorySegment;

/**
 * {@link RawDeviceMemory} of one CUDA device through cudart. Each call first makes the device
 * current on the calling thread; copies that touch host memory wait for the stream, so the
 * host buffer may be freed (or read) when they return.
 */
final class CudaRawMemory implements RawDeviceMemory {
    private final Device device;

    CudaRawMemory(Device device) {
        this.device = device;
    }

    @Override
    public Device device() {
        return device;
    }

    private void current() {
        CudaRuntime.setDevice(device.index());
    }

    @Override
    public long malloc(long bytes) {
        current();
        try {
            return CudaRuntime.malloc(bytes).address();
        } catch (CudaException e) {
            if (!e.isOutOfMemory()) {
                throw e;
            }
            CudaRuntime.lastError(); // clears the error, so later calls do not report it again
            throw new DeviceOutOfMemoryException(device + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void free(long address) {
        current();
        CudaRuntime.free(MemorySegment.ofAddress(address));
    }

    @Override
    public void memset(long address, int value, long bytes, long stream) {
        if (bytes > 0) {
            current();
            CudaRuntime.memsetAsync(MemorySegment.ofAddress(address), value, bytes, MemorySegment.ofAddress(stream));
        }
    }

    @Override
    public void copyFromHost(MemorySegment host, long dst, long bytes, long stream) {
        if (bytes > 0) {
            copyAndWait(MemorySegment.ofAddress(dst), host, bytes, CopyKind.HOST_TO_DEVICE, stream);
        }
    }

    @Override
    public void copyToHost(long src, MemorySegment host, long bytes, long stream) {
        if (bytes > 0) {
            copyAndWait(host, MemorySegment.ofAddress(src), bytes, CopyKind.DEVICE_TO_HOST, stream);
        }
    }

    private void copyAndWait(MemorySegment dst, MemorySegment src, long bytes, CopyKind kind, long stream) {
        current();
        MemorySegment s = MemorySegment.ofAddress(stream);
        CudaRuntime.memcpyAsync(dst, src, bytes, kind, s);
        CudaRuntime.streamSynchronize(s);
    }

    @Override
    public void copy(long src, long dst, long bytes, long stream) {
        if (bytes > 0) {
            current();
            CudaRuntime.memcpyAsync(MemorySegment.ofAddress(dst), MemorySegment.ofAddress(src), bytes,
                    CopyKind.DEVICE_TO_DEVICE, MemorySegment.ofAddress(stream));
        }
    }
}
