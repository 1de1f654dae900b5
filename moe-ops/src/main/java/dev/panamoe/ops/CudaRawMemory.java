package dev.panamoe.ops;

import dev.panamoe.bindings.CudaException;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.CudaRuntime.CopyKind;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link RawDeviceMemory} of one CUDA device through cudart. Each call first makes the device
 * current on the calling thread.
 *
 * <p>Copies to the host wait for the stream (the caller reads the values next). Copies from
 * the host do not: up to {@link #STAGED_MAX} bytes go through page-locked staging buffers,
 * from which cudaMemcpyAsync is asynchronous (CUDA's "API synchronization behavior": from
 * pageable memory the driver may synchronise with the stream first), each reused once an
 * event recorded after its copy has passed (cudaEventQuery, which never blocks). Only when
 * {@link #STAGING_BUFFERS} are all still in flight does a copy wait, for the oldest. Larger
 * copies (parameters at start-up, a checkpoint) go from pageable memory and wait. Every wait
 * is counted in the backend's {@link HostSyncs}.
 *
 * <p>Allocation failure releases the device pool that the CUDA library's stream-ordered
 * scratch memory comes from (cudaMallocAsync; its release threshold keeps it cached, see
 * {@link CudaBackend}) and retries once.
 */
final class CudaRawMemory implements RawDeviceMemory {
    static final long STAGED_MAX = 4L << 20;
    static final long STAGING_BYTES = 256L << 10;
    static final int STAGING_BUFFERS = 64;

    /** A page-locked buffer and the event recorded after the copy that read it last. */
    private record Staging(MemorySegment host, MemorySegment copied) {
    }

    private final Device device;
    private final HostSyncs syncs;
    private final List<Staging> staging = new ArrayList<>();
    private int nextStaging;

    CudaRawMemory(Device device, HostSyncs syncs) {
        this.device = device;
        this.syncs = syncs;
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
        }
        CudaRuntime.memPoolTrimTo(CudaRuntime.defaultMemPool(device.index()), 0);
        try {
            return CudaRuntime.malloc(bytes).address();
        } catch (CudaException e) {
            if (!e.isOutOfMemory()) {
                throw e;
            }
            CudaRuntime.lastError();
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
        if (bytes > STAGED_MAX) {
            copyAndWait(MemorySegment.ofAddress(dst), host, bytes, CopyKind.HOST_TO_DEVICE, stream);
            syncs.blocked("copy from host over " + (STAGED_MAX >> 20) + " MiB (pageable)");
        } else if (bytes > 0) {
            stagedCopy(host, dst, bytes, stream);
        }
    }

    /** Under the lock: the buffer is free again only once its event is recorded after this copy. */
    private synchronized void stagedCopy(MemorySegment host, long dst, long bytes, long stream) {
        current();
        MemorySegment s = MemorySegment.ofAddress(stream);
        Staging buffer = stagingFor(bytes);
        MemorySegment.copy(host, 0, buffer.host(), 0, bytes);
        CudaRuntime.memcpyAsync(MemorySegment.ofAddress(dst), buffer.host(), bytes, CopyKind.HOST_TO_DEVICE, s);
        CudaRuntime.eventRecord(buffer.copied(), s);
    }

    /** A staging buffer whose last copy is done: a free one, a new one, or the oldest after a wait. */
    private Staging stagingFor(long bytes) {
        for (int i = 0; i < staging.size(); i++) {
            Staging b = staging.get((nextStaging + i) % staging.size());
            if (b.host().byteSize() >= bytes && CudaRuntime.eventDone(b.copied())) {
                nextStaging = (nextStaging + i + 1) % staging.size();
                return b;
            }
        }
        if (staging.size() < STAGING_BUFFERS) {
            Staging b = new Staging(CudaRuntime.mallocHost(Math.max(STAGING_BYTES, bytes)),
                    CudaRuntime.eventCreateForOrdering());
            staging.add(b);
            return b;
        }
        Staging oldest = staging.get(nextStaging);
        CudaRuntime.eventSynchronize(oldest.copied());
        syncs.blocked("copy from host: all " + STAGING_BUFFERS + " staging buffers in flight");
        Staging b = oldest.host().byteSize() >= bytes ? oldest
                : new Staging(CudaRuntime.mallocHost(bytes), oldest.copied());
        if (b != oldest) {
            CudaRuntime.freeHost(oldest.host());
            staging.set(nextStaging, b);
        }
        nextStaging = (nextStaging + 1) % staging.size();
        return b;
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
