package dev.panamoe.ops;

import dev.panamoe.bindings.CudaException;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.NativeLibraries;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The backend of one CUDA device: libpanamoe_cuda.so's kernels on one stream of the device,
 * tensors in blocks of a {@link CachingAllocator}. The calls and their Java-side checks are
 * {@link NativeBackend}'s, as on the CPU; the value checks of index tensors, which would copy
 * them to the host, run only in the debug mode ({@link Backend#checksValuesOnHost()}). The host
 * waits for the device only where it reads device memory or calls {@link #synchronize()}, each
 * counted in {@link #hostSyncs()}.
 *
 * <p>One instance per device for the life of the JVM ({@link #get}); it may be used from any
 * thread, each call making the device current on the calling thread first. Kernels are ordered
 * on the backend's stream; the host accessors of its tensors wait for the stream.
 */
public final class CudaBackend extends NativeBackend {
    private static final Map<Integer, CudaBackend> DEVICES = new ConcurrentHashMap<>();

    private final Device device;
    private final MemorySegment stream;
    private final CudaRawMemory raw;
    private final CachingAllocator allocator;

    private CudaBackend(panamoe_h lib, Device device, MemorySegment stream) {
        super(lib, deviceDebugChecks());
        this.device = device;
        this.stream = stream;
        this.raw = new CudaRawMemory(device, hostSyncs());
        this.allocator = new CachingAllocator(raw);
    }

    /**
     * The backend of CUDA device {@code index}, created on first use. Throws
     * {@link BackendUnavailableException} with cudart's reason (or the loader's) when the device
     * cannot be used, e.g. "no usable CUDA device: cudaGetDeviceCount: CUDA driver version is
     * insufficient for CUDA runtime version (cudaErrorInsufficientDriver = 35)".
     */
    public static CudaBackend get(int index) {
        Checks.require(index >= 0, "index: must be >= 0, got " + index);
        return DEVICES.computeIfAbsent(index, CudaBackend::open);
    }

    private static CudaBackend open(int index) {
        CudaRuntime.Devices devices = CudaRuntime.probe();
        if (!devices.available()) {
            throw new BackendUnavailableException("no usable CUDA device: " + devices.reason(), null);
        }
        if (index >= devices.count()) {
            throw new BackendUnavailableException("no CUDA device " + index + ": this machine has " + devices.count()
                    + " (cuda:0 to cuda:" + (devices.count() - 1) + ")", null);
        }
        try {
            panamoe_h lib = panamoe_h.open(NativeLibraries.panamoeCuda());
            CudaRuntime.setDevice(index);
            // The library's scratch (cudaMallocAsync) is freed at the end of each call; with the
            // default threshold 0 the pool hands it back to the OS at every synchronisation, so the
            // next step maps it again. Keep it all cached, as PyTorch's cudaMallocAsync backend does;
            // CudaRawMemory trims the pool when cudaMalloc runs out.
            CudaRuntime.setMemPoolReleaseThreshold(CudaRuntime.defaultMemPool(index), -1L);
            return new CudaBackend(lib, Device.cuda(index), CudaRuntime.streamCreate());
        } catch (NativeLibraryUnavailableException | CudaException e) {
            throw new BackendUnavailableException("cuda:" + index + " unusable: " + e.getMessage(), e);
        }
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Device device() {
        return device;
    }

    @Override
    public TensorMemory openMemory(boolean shared) {
        return new DeviceMemory(allocator, raw, stream.address(), hostSyncs());
    }

    /**
     * The stream this backend's kernels and copies run on, with the device made current on the
     * calling thread: other streams (a communicator's) order themselves against it with events.
     */
    @Override
    public MemorySegment stream() {
        CudaRuntime.setDevice(device.index());
        return stream;
    }

    /** The allocator of this device's tensors (statistics, emptyCache). */
    public CachingAllocator allocator() {
        return allocator;
    }

    /** Waits for every kernel and copy queued on this backend's stream; reports their errors. */
    public void synchronize() {
        CudaRuntime.streamSynchronize(stream());
        hostSyncs().blocked("stream synchronize");
    }

    public CudaRuntime.DeviceProperties properties() {
        return CudaRuntime.properties(device.index());
    }
}
