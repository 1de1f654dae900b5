package dev.panamoe.bindings;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Typed calls of the CUDA runtime subset in {@link cudart_h}: every error code becomes a
 * {@link CudaException} naming the call and carrying cudaGetErrorString's text, and a missing
 * libcudart.so.13 a {@link NativeLibraryUnavailableException}. Device pointers are zero-length
 * segments (MemorySegment.ofAddress): passing them to a downcall works, while host code that
 * tries to read one fails with IndexOutOfBoundsException instead of crashing the JVM.
 * Streams and events are opaque handles; MemorySegment.NULL is the default stream.
 *
 * <p>The current device is a per-thread setting of the runtime: call {@link #setDevice} on each
 * thread before allocating or launching on a device other than 0.
 */
public final class CudaRuntime {
    private CudaRuntime() {}

    /** How many devices this process can use, or why none ({@code reason} is null when count > 0). */
    public record Devices(int count, String reason) {
        public boolean available() {
            return count > 0;
        }
    }

    /** What {@link #properties} reports of a device. */
    public record DeviceProperties(int index, String name, long totalMemory, int multiprocessors,
            int computeMajor, int computeMinor) {
        @Override
        public String toString() {
            return String.format("cuda:%d %s, %d SMs, compute capability %d.%d, %.1f GiB", index, name,
                    multiprocessors, computeMajor, computeMinor, totalMemory / (double) (1L << 30));
        }
    }

    /** Free and total memory of the current device, in bytes (cudaMemGetInfo). */
    public record MemoryInfo(long free, long total) {}

    /** Throws CudaException "call: text (name = code)" unless status is cudaSuccess. */
    public static void check(int status, String call) {
        if (status != cudart_h.cudaSuccess) {
            throw new CudaException(status, call, call + ": " + errorString(status) + " (" + errorName(status)
                    + " = " + status + ")");
        }
    }

    public static String errorString(int error) {
        NativeLibraries.cudart();
        return cudart_h.cudaGetErrorString(error).getString(0);
    }

    public static String errorName(int error) {
        NativeLibraries.cudart();
        return cudart_h.cudaGetErrorName(error).getString(0);
    }

    /** cudaGetLastError: the last error of this thread's runtime calls, which it also resets. */
    public static int lastError() {
        NativeLibraries.cudart();
        return cudart_h.cudaGetLastError();
    }

    /** Never throws: the device count, or the loader's or cudaGetDeviceCount's reason for none. */
    public static Devices probe() {
        try {
            int n = deviceCount();
            return n > 0 ? new Devices(n, null) : new Devices(0, "cudaGetDeviceCount found no device");
        } catch (NativeLibraryUnavailableException | CudaException e) {
            return new Devices(0, e.getMessage());
        }
    }

    public static int deviceCount() {
        NativeLibraries.cudart();
        return readInt(count -> cudart_h.cudaGetDeviceCount(count), "cudaGetDeviceCount");
    }

    public static void setDevice(int device) {
        NativeLibraries.cudart();
        check(cudart_h.cudaSetDevice(device), "cudaSetDevice(" + device + ")");
    }

    /** The calling thread's current device. */
    public static int device() {
        NativeLibraries.cudart();
        return readInt(d -> cudart_h.cudaGetDevice(d), "cudaGetDevice");
    }

    /**
     * Name (from cudaGetDeviceProperties into a buffer larger than any release's struct),
     * SM count and compute capability (cudaDeviceGetAttribute) and total memory
     * (cudaMemGetInfo, on the device made current for the call; the thread's device is restored).
     */
    public static DeviceProperties properties(int device) {
        NativeLibraries.cudart();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment prop = arena.allocate(cudart_h.cudaDeviceProp_BUFFER_SIZE, 16);
            check(cudart_h.cudaGetDeviceProperties(prop, device), "cudaGetDeviceProperties(" + device + ")");
            String name = prop.asSlice(0, cudart_h.cudaDeviceProp_NAME_LENGTH).getString(0);
            int sms = attribute(cudart_h.cudaDevAttrMultiProcessorCount, device, "cudaDevAttrMultiProcessorCount");
            int major = attribute(cudart_h.cudaDevAttrComputeCapabilityMajor, device,
                    "cudaDevAttrComputeCapabilityMajor");
            int minor = attribute(cudart_h.cudaDevAttrComputeCapabilityMinor, device,
                    "cudaDevAttrComputeCapabilityMinor");
            int previous = device();
            setDevice(device);
            try {
                return new DeviceProperties(device, name, memoryInfo().total(), sms, major, minor);
            } finally {
                setDevice(previous);
            }
        }
    }

    private static int attribute(int attr, int device, String attrName) {
        return readInt(v -> cudart_h.cudaDeviceGetAttribute(v, attr, device),
                "cudaDeviceGetAttribute(" + attrName + ", " + device + ")");
    }

    public static MemoryInfo memoryInfo() {
        NativeLibraries.cudart();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(ValueLayout.JAVA_LONG);
            MemorySegment total = arena.allocate(ValueLayout.JAVA_LONG);
            check(cudart_h.cudaMemGetInfo(free, total), "cudaMemGetInfo");
            return new MemoryInfo(free.get(ValueLayout.JAVA_LONG, 0), total.get(ValueLayout.JAVA_LONG, 0));
        }
    }

    /** cudaMalloc on the current device: a zero-length segment at the device address. */
    public static MemorySegment malloc(long bytes) {
        NativeLibraries.cudart();
        return readPointer(p -> cudart_h.cudaMalloc(p, bytes), "cudaMalloc(" + bytes + " bytes)");
    }

    public static void free(MemorySegment devicePointer) {
        NativeLibraries.cudart();
        check(cudart_h.cudaFree(devicePointer), "cudaFree(0x" + Long.toHexString(devicePointer.address()) + ")");
    }

    /** The directions of {@link #memcpyAsync}. */
    public enum CopyKind {
        HOST_TO_DEVICE(cudart_h.cudaMemcpyHostToDevice),
        DEVICE_TO_HOST(cudart_h.cudaMemcpyDeviceToHost),
        DEVICE_TO_DEVICE(cudart_h.cudaMemcpyDeviceToDevice);

        private final int code;

        CopyKind(int code) {
            this.code = code;
        }
    }

    /**
     * Copies bytes on the stream. A host side in pageable memory makes the copy synchronous
     * in parts; read a device-to-host result only after {@link #streamSynchronize}.
     */
    public static void memcpyAsync(MemorySegment dst, MemorySegment src, long bytes, CopyKind kind,
            MemorySegment stream) {
        NativeLibraries.cudart();
        check(cudart_h.cudaMemcpyAsync(dst, src, bytes, kind.code, stream),
                "cudaMemcpyAsync(" + bytes + " bytes, " + kind + ")");
    }

    public static void memsetAsync(MemorySegment devicePointer, int value, long bytes, MemorySegment stream) {
        NativeLibraries.cudart();
        check(cudart_h.cudaMemsetAsync(devicePointer, value, bytes, stream), "cudaMemsetAsync(" + bytes + " bytes)");
    }

    public static MemorySegment streamCreate() {
        NativeLibraries.cudart();
        return readPointer(s -> cudart_h.cudaStreamCreate(s), "cudaStreamCreate");
    }

    public static void streamDestroy(MemorySegment stream) {
        NativeLibraries.cudart();
        check(cudart_h.cudaStreamDestroy(stream), "cudaStreamDestroy");
    }

    public static void streamSynchronize(MemorySegment stream) {
        NativeLibraries.cudart();
        check(cudart_h.cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    }

    public static MemorySegment eventCreate() {
        NativeLibraries.cudart();
        return readPointer(e -> cudart_h.cudaEventCreate(e), "cudaEventCreate");
    }

    public static void eventRecord(MemorySegment event, MemorySegment stream) {
        NativeLibraries.cudart();
        check(cudart_h.cudaEventRecord(event, stream), "cudaEventRecord");
    }

    public static void eventSynchronize(MemorySegment event) {
        NativeLibraries.cudart();
        check(cudart_h.cudaEventSynchronize(event), "cudaEventSynchronize");
    }

    /** Milliseconds between two recorded events (resolution about 0.5 us). */
    public static float eventElapsedMillis(MemorySegment start, MemorySegment end) {
        NativeLibraries.cudart();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ms = arena.allocate(ValueLayout.JAVA_FLOAT);
            check(cudart_h.cudaEventElapsedTime(ms, start, end), "cudaEventElapsedTime");
            return ms.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    public static void eventDestroy(MemorySegment event) {
        NativeLibraries.cudart();
        check(cudart_h.cudaEventDestroy(event), "cudaEventDestroy");
    }

    /** Page-locked host memory of bytes (cudaMallocHost): copies from it to a device are asynchronous. */
    public static MemorySegment mallocHost(long bytes) {
        NativeLibraries.cudart();
        return readPointer(p -> cudart_h.cudaMallocHost(p, bytes), "cudaMallocHost(" + bytes + " bytes)")
                .reinterpret(bytes);
    }

    public static void freeHost(MemorySegment hostPointer) {
        NativeLibraries.cudart();
        check(cudart_h.cudaFreeHost(hostPointer), "cudaFreeHost");
    }

    /** An event without timing data (cudaEventDisableTiming): the cheap kind, for ordering and polling. */
    public static MemorySegment eventCreateForOrdering() {
        NativeLibraries.cudart();
        return readPointer(e -> cudart_h.cudaEventCreateWithFlags(e, cudart_h.cudaEventDisableTiming),
                "cudaEventCreateWithFlags(cudaEventDisableTiming)");
    }

    /** Whether the work before the event's last record is done (true for an event never recorded); never blocks. */
    public static boolean eventDone(MemorySegment event) {
        NativeLibraries.cudart();
        int status = cudart_h.cudaEventQuery(event);
        if (status == cudart_h.cudaErrorNotReady) {
            return false;
        }
        check(status, "cudaEventQuery");
        return true;
    }

    /** Work queued on stream after this call waits, on the device, for the event's work; the host does not wait. */
    public static void streamWaitEvent(MemorySegment stream, MemorySegment event) {
        NativeLibraries.cudart();
        check(cudart_h.cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent");
    }

    /** The device's default memory pool, which cudaMallocAsync allocates from. */
    public static MemorySegment defaultMemPool(int device) {
        NativeLibraries.cudart();
        return readPointer(p -> cudart_h.cudaDeviceGetDefaultMemPool(p, device),
                "cudaDeviceGetDefaultMemPool(" + device + ")");
    }

    /**
     * cudaMemPoolAttrReleaseThreshold: the pool keeps up to bytes of freed memory cached across
     * synchronisations instead of returning it to the OS at each (the default, 0).
     */
    public static void setMemPoolReleaseThreshold(MemorySegment pool, long bytes) {
        NativeLibraries.cudart();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocateFrom(ValueLayout.JAVA_LONG, bytes);
            check(cudart_h.cudaMemPoolSetAttribute(pool, cudart_h.cudaMemPoolAttrReleaseThreshold, value),
                    "cudaMemPoolSetAttribute(cudaMemPoolAttrReleaseThreshold, " + Long.toUnsignedString(bytes) + ")");
        }
    }

    public static long memPoolReleaseThreshold(MemorySegment pool) {
        NativeLibraries.cudart();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(ValueLayout.JAVA_LONG);
            check(cudart_h.cudaMemPoolGetAttribute(pool, cudart_h.cudaMemPoolAttrReleaseThreshold, value),
                    "cudaMemPoolGetAttribute(cudaMemPoolAttrReleaseThreshold)");
            return value.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    /** Returns the pool's unused memory beyond keepBytes to the OS. */
    public static void memPoolTrimTo(MemorySegment pool, long keepBytes) {
        NativeLibraries.cudart();
        check(cudart_h.cudaMemPoolTrimTo(pool, keepBytes), "cudaMemPoolTrimTo(" + keepBytes + ")");
    }

    public static void deviceSynchronize() {
        NativeLibraries.cudart();
        check(cudart_h.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }

    private interface Call {
        int invoke(MemorySegment out);
    }

    private static int readInt(Call call, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_INT);
            check(call.invoke(out), name);
            return out.get(ValueLayout.JAVA_INT, 0);
        }
    }

    private static MemorySegment readPointer(Call call, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            check(call.invoke(out), name);
            return MemorySegment.ofAddress(out.get(ValueLayout.ADDRESS, 0).address());
        }
    }
}
