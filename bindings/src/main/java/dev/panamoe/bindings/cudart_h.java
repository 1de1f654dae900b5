package dev.panamoe.bindings;

import static dev.panamoe.bindings.panamoe_h.C_INT;
import static dev.panamoe.bindings.panamoe_h.C_LONG;
import static dev.panamoe.bindings.panamoe_h.C_POINTER;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The subset of the CUDA runtime (libcudart.so.13) PanaMoE uses, in jextract's shape: per
 * function a holder class, {@code $descriptor()/$handle()/$address()} and a typed wrapper
 * (int -> int, size_t -> long, enums -> int, pointers, streams and events -> MemorySegment).
 * Code above the bindings uses {@link CudaRuntime}, which turns error codes into exceptions.
 * Call {@link NativeLibraries#cudart()} first: it fails with a reason when the library is
 * missing, whereas a holder class here would fail with an initialisation error.
 */
@SuppressWarnings("restricted")
public final class cudart_h {
    private cudart_h() {}

    // cudaError_t values used by name
    public static final int cudaSuccess = 0;
    public static final int cudaErrorInvalidValue = 1;
    public static final int cudaErrorMemoryAllocation = 2;
    public static final int cudaErrorInsufficientDriver = 35;
    public static final int cudaErrorNoDevice = 100;
    public static final int cudaErrorNotReady = 600;

    // enum cudaMemcpyKind
    public static final int cudaMemcpyHostToHost = 0;
    public static final int cudaMemcpyHostToDevice = 1;
    public static final int cudaMemcpyDeviceToHost = 2;
    public static final int cudaMemcpyDeviceToDevice = 3;
    public static final int cudaMemcpyDefault = 4;

    // event flags, enum cudaMemPoolAttr
    public static final int cudaEventDisableTiming = 0x02;
    public static final int cudaMemPoolAttrReleaseThreshold = 0x4;

    // enum cudaDeviceAttr
    public static final int cudaDevAttrMultiProcessorCount = 16;
    public static final int cudaDevAttrComputeCapabilityMajor = 75;
    public static final int cudaDevAttrComputeCapabilityMinor = 76;

    /**
     * struct cudaDeviceProp is 1008 bytes in CUDA 13 and has grown between releases; only its
     * first field, {@code char name[256]}, is read, so callers pass a buffer of this size.
     */
    public static final long cudaDeviceProp_BUFFER_SIZE = 4096;
    public static final int cudaDeviceProp_NAME_LENGTH = 256;

    private static final class cudaGetDeviceCount {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaGetDeviceCount");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaGetDeviceCount$descriptor() {
        return cudaGetDeviceCount.DESC;
    }

    public static MethodHandle cudaGetDeviceCount$handle() {
        return cudaGetDeviceCount.HANDLE;
    }

    public static MemorySegment cudaGetDeviceCount$address() {
        return cudaGetDeviceCount.ADDR;
    }

    /** {@code cudaError_t cudaGetDeviceCount(int *count)} */
    public static int cudaGetDeviceCount(MemorySegment count) {
        try {
            return (int) cudaGetDeviceCount.HANDLE.invokeExact(count);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaSetDevice {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaSetDevice");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaSetDevice$descriptor() {
        return cudaSetDevice.DESC;
    }

    public static MethodHandle cudaSetDevice$handle() {
        return cudaSetDevice.HANDLE;
    }

    public static MemorySegment cudaSetDevice$address() {
        return cudaSetDevice.ADDR;
    }

    /** {@code cudaError_t cudaSetDevice(int device)} */
    public static int cudaSetDevice(int device) {
        try {
            return (int) cudaSetDevice.HANDLE.invokeExact(device);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaGetDevice {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaGetDevice");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaGetDevice$descriptor() {
        return cudaGetDevice.DESC;
    }

    public static MethodHandle cudaGetDevice$handle() {
        return cudaGetDevice.HANDLE;
    }

    public static MemorySegment cudaGetDevice$address() {
        return cudaGetDevice.ADDR;
    }

    /** {@code cudaError_t cudaGetDevice(int *device)} */
    public static int cudaGetDevice(MemorySegment device) {
        try {
            return (int) cudaGetDevice.HANDLE.invokeExact(device);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaGetDeviceProperties {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaGetDeviceProperties");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaGetDeviceProperties$descriptor() {
        return cudaGetDeviceProperties.DESC;
    }

    public static MethodHandle cudaGetDeviceProperties$handle() {
        return cudaGetDeviceProperties.HANDLE;
    }

    public static MemorySegment cudaGetDeviceProperties$address() {
        return cudaGetDeviceProperties.ADDR;
    }

    /** {@code cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)} */
    public static int cudaGetDeviceProperties(MemorySegment prop, int device) {
        try {
            return (int) cudaGetDeviceProperties.HANDLE.invokeExact(prop, device);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaDeviceGetAttribute {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaDeviceGetAttribute");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaDeviceGetAttribute$descriptor() {
        return cudaDeviceGetAttribute.DESC;
    }

    public static MethodHandle cudaDeviceGetAttribute$handle() {
        return cudaDeviceGetAttribute.HANDLE;
    }

    public static MemorySegment cudaDeviceGetAttribute$address() {
        return cudaDeviceGetAttribute.ADDR;
    }

    /** {@code cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)} */
    public static int cudaDeviceGetAttribute(MemorySegment value, int attr, int device) {
        try {
            return (int) cudaDeviceGetAttribute.HANDLE.invokeExact(value, attr, device);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMemGetInfo {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMemGetInfo");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMemGetInfo$descriptor() {
        return cudaMemGetInfo.DESC;
    }

    public static MethodHandle cudaMemGetInfo$handle() {
        return cudaMemGetInfo.HANDLE;
    }

    public static MemorySegment cudaMemGetInfo$address() {
        return cudaMemGetInfo.ADDR;
    }

    /** {@code cudaError_t cudaMemGetInfo(size_t *free, size_t *total)} */
    public static int cudaMemGetInfo(MemorySegment free, MemorySegment total) {
        try {
            return (int) cudaMemGetInfo.HANDLE.invokeExact(free, total);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMalloc {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMalloc");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMalloc$descriptor() {
        return cudaMalloc.DESC;
    }

    public static MethodHandle cudaMalloc$handle() {
        return cudaMalloc.HANDLE;
    }

    public static MemorySegment cudaMalloc$address() {
        return cudaMalloc.ADDR;
    }

    /** {@code cudaError_t cudaMalloc(void **devPtr, size_t size)} */
    public static int cudaMalloc(MemorySegment devPtr, long size) {
        try {
            return (int) cudaMalloc.HANDLE.invokeExact(devPtr, size);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaFree {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaFree");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaFree$descriptor() {
        return cudaFree.DESC;
    }

    public static MethodHandle cudaFree$handle() {
        return cudaFree.HANDLE;
    }

    public static MemorySegment cudaFree$address() {
        return cudaFree.ADDR;
    }

    /** {@code cudaError_t cudaFree(void *devPtr)} */
    public static int cudaFree(MemorySegment devPtr) {
        try {
            return (int) cudaFree.HANDLE.invokeExact(devPtr);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMemcpyAsync {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_LONG, C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMemcpyAsync");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMemcpyAsync$descriptor() {
        return cudaMemcpyAsync.DESC;
    }

    public static MethodHandle cudaMemcpyAsync$handle() {
        return cudaMemcpyAsync.HANDLE;
    }

    public static MemorySegment cudaMemcpyAsync$address() {
        return cudaMemcpyAsync.ADDR;
    }

    /** {@code cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream)} */
    public static int cudaMemcpyAsync(MemorySegment dst, MemorySegment src, long count, int kind, MemorySegment stream) {
        try {
            return (int) cudaMemcpyAsync.HANDLE.invokeExact(dst, src, count, kind, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMemsetAsync {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_LONG, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMemsetAsync");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMemsetAsync$descriptor() {
        return cudaMemsetAsync.DESC;
    }

    public static MethodHandle cudaMemsetAsync$handle() {
        return cudaMemsetAsync.HANDLE;
    }

    public static MemorySegment cudaMemsetAsync$address() {
        return cudaMemsetAsync.ADDR;
    }

    /** {@code cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream)} */
    public static int cudaMemsetAsync(MemorySegment devPtr, int value, long count, MemorySegment stream) {
        try {
            return (int) cudaMemsetAsync.HANDLE.invokeExact(devPtr, value, count, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaStreamCreate {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaStreamCreate");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaStreamCreate$descriptor() {
        return cudaStreamCreate.DESC;
    }

    public static MethodHandle cudaStreamCreate$handle() {
        return cudaStreamCreate.HANDLE;
    }

    public static MemorySegment cudaStreamCreate$address() {
        return cudaStreamCreate.ADDR;
    }

    /** {@code cudaError_t cudaStreamCreate(cudaStream_t *pStream)} */
    public static int cudaStreamCreate(MemorySegment pStream) {
        try {
            return (int) cudaStreamCreate.HANDLE.invokeExact(pStream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaStreamDestroy {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaStreamDestroy");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaStreamDestroy$descriptor() {
        return cudaStreamDestroy.DESC;
    }

    public static MethodHandle cudaStreamDestroy$handle() {
        return cudaStreamDestroy.HANDLE;
    }

    public static MemorySegment cudaStreamDestroy$address() {
        return cudaStreamDestroy.ADDR;
    }

    /** {@code cudaError_t cudaStreamDestroy(cudaStream_t stream)} */
    public static int cudaStreamDestroy(MemorySegment stream) {
        try {
            return (int) cudaStreamDestroy.HANDLE.invokeExact(stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaStreamSynchronize {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaStreamSynchronize");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaStreamSynchronize$descriptor() {
        return cudaStreamSynchronize.DESC;
    }

    public static MethodHandle cudaStreamSynchronize$handle() {
        return cudaStreamSynchronize.HANDLE;
    }

    public static MemorySegment cudaStreamSynchronize$address() {
        return cudaStreamSynchronize.ADDR;
    }

    /** {@code cudaError_t cudaStreamSynchronize(cudaStream_t stream)} */
    public static int cudaStreamSynchronize(MemorySegment stream) {
        try {
            return (int) cudaStreamSynchronize.HANDLE.invokeExact(stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaStreamQuery {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaStreamQuery");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaStreamQuery$descriptor() {
        return cudaStreamQuery.DESC;
    }

    public static MethodHandle cudaStreamQuery$handle() {
        return cudaStreamQuery.HANDLE;
    }

    public static MemorySegment cudaStreamQuery$address() {
        return cudaStreamQuery.ADDR;
    }

    /** {@code cudaError_t cudaStreamQuery(cudaStream_t stream)}: cudaSuccess when done, cudaErrorNotReady while running */
    public static int cudaStreamQuery(MemorySegment stream) {
        try {
            return (int) cudaStreamQuery.HANDLE.invokeExact(stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventCreate {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventCreate");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventCreate$descriptor() {
        return cudaEventCreate.DESC;
    }

    public static MethodHandle cudaEventCreate$handle() {
        return cudaEventCreate.HANDLE;
    }

    public static MemorySegment cudaEventCreate$address() {
        return cudaEventCreate.ADDR;
    }

    /** {@code cudaError_t cudaEventCreate(cudaEvent_t *event)} */
    public static int cudaEventCreate(MemorySegment event) {
        try {
            return (int) cudaEventCreate.HANDLE.invokeExact(event);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventRecord {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventRecord");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventRecord$descriptor() {
        return cudaEventRecord.DESC;
    }

    public static MethodHandle cudaEventRecord$handle() {
        return cudaEventRecord.HANDLE;
    }

    public static MemorySegment cudaEventRecord$address() {
        return cudaEventRecord.ADDR;
    }

    /** {@code cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)} */
    public static int cudaEventRecord(MemorySegment event, MemorySegment stream) {
        try {
            return (int) cudaEventRecord.HANDLE.invokeExact(event, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventSynchronize {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventSynchronize");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventSynchronize$descriptor() {
        return cudaEventSynchronize.DESC;
    }

    public static MethodHandle cudaEventSynchronize$handle() {
        return cudaEventSynchronize.HANDLE;
    }

    public static MemorySegment cudaEventSynchronize$address() {
        return cudaEventSynchronize.ADDR;
    }

    /** {@code cudaError_t cudaEventSynchronize(cudaEvent_t event)} */
    public static int cudaEventSynchronize(MemorySegment event) {
        try {
            return (int) cudaEventSynchronize.HANDLE.invokeExact(event);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventElapsedTime {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventElapsedTime");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventElapsedTime$descriptor() {
        return cudaEventElapsedTime.DESC;
    }

    public static MethodHandle cudaEventElapsedTime$handle() {
        return cudaEventElapsedTime.HANDLE;
    }

    public static MemorySegment cudaEventElapsedTime$address() {
        return cudaEventElapsedTime.ADDR;
    }

    /** {@code cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)} */
    public static int cudaEventElapsedTime(MemorySegment ms, MemorySegment start, MemorySegment end) {
        try {
            return (int) cudaEventElapsedTime.HANDLE.invokeExact(ms, start, end);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventDestroy {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventDestroy");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventDestroy$descriptor() {
        return cudaEventDestroy.DESC;
    }

    public static MethodHandle cudaEventDestroy$handle() {
        return cudaEventDestroy.HANDLE;
    }

    public static MemorySegment cudaEventDestroy$address() {
        return cudaEventDestroy.ADDR;
    }

    /** {@code cudaError_t cudaEventDestroy(cudaEvent_t event)} */
    public static int cudaEventDestroy(MemorySegment event) {
        try {
            return (int) cudaEventDestroy.HANDLE.invokeExact(event);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaDeviceSynchronize {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaDeviceSynchronize");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaDeviceSynchronize$descriptor() {
        return cudaDeviceSynchronize.DESC;
    }

    public static MethodHandle cudaDeviceSynchronize$handle() {
        return cudaDeviceSynchronize.HANDLE;
    }

    public static MemorySegment cudaDeviceSynchronize$address() {
        return cudaDeviceSynchronize.ADDR;
    }

    /** {@code cudaError_t cudaDeviceSynchronize(void)} */
    public static int cudaDeviceSynchronize() {
        try {
            return (int) cudaDeviceSynchronize.HANDLE.invokeExact();
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaGetLastError {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaGetLastError");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaGetLastError$descriptor() {
        return cudaGetLastError.DESC;
    }

    public static MethodHandle cudaGetLastError$handle() {
        return cudaGetLastError.HANDLE;
    }

    public static MemorySegment cudaGetLastError$address() {
        return cudaGetLastError.ADDR;
    }

    /** {@code cudaError_t cudaGetLastError(void)} */
    public static int cudaGetLastError() {
        try {
            return (int) cudaGetLastError.HANDLE.invokeExact();
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaGetErrorString {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaGetErrorString");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaGetErrorString$descriptor() {
        return cudaGetErrorString.DESC;
    }

    public static MethodHandle cudaGetErrorString$handle() {
        return cudaGetErrorString.HANDLE;
    }

    public static MemorySegment cudaGetErrorString$address() {
        return cudaGetErrorString.ADDR;
    }

    /** {@code const char *cudaGetErrorString(cudaError_t error)} */
    public static MemorySegment cudaGetErrorString(int error) {
        try {
            return (MemorySegment) cudaGetErrorString.HANDLE.invokeExact(error);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaGetErrorName {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaGetErrorName");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaGetErrorName$descriptor() {
        return cudaGetErrorName.DESC;
    }

    public static MethodHandle cudaGetErrorName$handle() {
        return cudaGetErrorName.HANDLE;
    }

    public static MemorySegment cudaGetErrorName$address() {
        return cudaGetErrorName.ADDR;
    }

    /** {@code const char *cudaGetErrorName(cudaError_t error)} */
    public static MemorySegment cudaGetErrorName(int error) {
        try {
            return (MemorySegment) cudaGetErrorName.HANDLE.invokeExact(error);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaRuntimeGetVersion {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaRuntimeGetVersion");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaRuntimeGetVersion$descriptor() {
        return cudaRuntimeGetVersion.DESC;
    }

    public static MethodHandle cudaRuntimeGetVersion$handle() {
        return cudaRuntimeGetVersion.HANDLE;
    }

    public static MemorySegment cudaRuntimeGetVersion$address() {
        return cudaRuntimeGetVersion.ADDR;
    }

    /** {@code cudaError_t cudaRuntimeGetVersion(int *runtimeVersion)} */
    public static int cudaRuntimeGetVersion(MemorySegment runtimeVersion) {
        try {
            return (int) cudaRuntimeGetVersion.HANDLE.invokeExact(runtimeVersion);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaDriverGetVersion {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaDriverGetVersion");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaDriverGetVersion$descriptor() {
        return cudaDriverGetVersion.DESC;
    }

    public static MethodHandle cudaDriverGetVersion$handle() {
        return cudaDriverGetVersion.HANDLE;
    }

    public static MemorySegment cudaDriverGetVersion$address() {
        return cudaDriverGetVersion.ADDR;
    }

    /** {@code cudaError_t cudaDriverGetVersion(int *driverVersion)} */
    public static int cudaDriverGetVersion(MemorySegment driverVersion) {
        try {
            return (int) cudaDriverGetVersion.HANDLE.invokeExact(driverVersion);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMallocHost {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMallocHost");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMallocHost$descriptor() {
        return cudaMallocHost.DESC;
    }

    public static MethodHandle cudaMallocHost$handle() {
        return cudaMallocHost.HANDLE;
    }

    public static MemorySegment cudaMallocHost$address() {
        return cudaMallocHost.ADDR;
    }

    /** {@code cudaError_t cudaMallocHost(void **ptr, size_t size)}: page-locked host memory */
    public static int cudaMallocHost(MemorySegment ptr, long size) {
        try {
            return (int) cudaMallocHost.HANDLE.invokeExact(ptr, size);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaFreeHost {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaFreeHost");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaFreeHost$descriptor() {
        return cudaFreeHost.DESC;
    }

    public static MethodHandle cudaFreeHost$handle() {
        return cudaFreeHost.HANDLE;
    }

    public static MemorySegment cudaFreeHost$address() {
        return cudaFreeHost.ADDR;
    }

    /** {@code cudaError_t cudaFreeHost(void *ptr)} */
    public static int cudaFreeHost(MemorySegment ptr) {
        try {
            return (int) cudaFreeHost.HANDLE.invokeExact(ptr);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventCreateWithFlags {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventCreateWithFlags");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventCreateWithFlags$descriptor() {
        return cudaEventCreateWithFlags.DESC;
    }

    public static MethodHandle cudaEventCreateWithFlags$handle() {
        return cudaEventCreateWithFlags.HANDLE;
    }

    public static MemorySegment cudaEventCreateWithFlags$address() {
        return cudaEventCreateWithFlags.ADDR;
    }

    /** {@code cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)} */
    public static int cudaEventCreateWithFlags(MemorySegment event, int flags) {
        try {
            return (int) cudaEventCreateWithFlags.HANDLE.invokeExact(event, flags);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaEventQuery {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaEventQuery");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaEventQuery$descriptor() {
        return cudaEventQuery.DESC;
    }

    public static MethodHandle cudaEventQuery$handle() {
        return cudaEventQuery.HANDLE;
    }

    public static MemorySegment cudaEventQuery$address() {
        return cudaEventQuery.ADDR;
    }

    /** {@code cudaError_t cudaEventQuery(cudaEvent_t event)}: cudaSuccess once the work before the record is done (or never recorded), cudaErrorNotReady before; never blocks */
    public static int cudaEventQuery(MemorySegment event) {
        try {
            return (int) cudaEventQuery.HANDLE.invokeExact(event);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaStreamWaitEvent {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaStreamWaitEvent");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaStreamWaitEvent$descriptor() {
        return cudaStreamWaitEvent.DESC;
    }

    public static MethodHandle cudaStreamWaitEvent$handle() {
        return cudaStreamWaitEvent.HANDLE;
    }

    public static MemorySegment cudaStreamWaitEvent$address() {
        return cudaStreamWaitEvent.ADDR;
    }

    /** {@code cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags)}: work queued on stream later waits for the event's work, on the device */
    public static int cudaStreamWaitEvent(MemorySegment stream, MemorySegment event, int flags) {
        try {
            return (int) cudaStreamWaitEvent.HANDLE.invokeExact(stream, event, flags);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaDeviceGetDefaultMemPool {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaDeviceGetDefaultMemPool");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaDeviceGetDefaultMemPool$descriptor() {
        return cudaDeviceGetDefaultMemPool.DESC;
    }

    public static MethodHandle cudaDeviceGetDefaultMemPool$handle() {
        return cudaDeviceGetDefaultMemPool.HANDLE;
    }

    public static MemorySegment cudaDeviceGetDefaultMemPool$address() {
        return cudaDeviceGetDefaultMemPool.ADDR;
    }

    /** {@code cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *memPool, int device)} */
    public static int cudaDeviceGetDefaultMemPool(MemorySegment memPool, int device) {
        try {
            return (int) cudaDeviceGetDefaultMemPool.HANDLE.invokeExact(memPool, device);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMemPoolSetAttribute {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMemPoolSetAttribute");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMemPoolSetAttribute$descriptor() {
        return cudaMemPoolSetAttribute.DESC;
    }

    public static MethodHandle cudaMemPoolSetAttribute$handle() {
        return cudaMemPoolSetAttribute.HANDLE;
    }

    public static MemorySegment cudaMemPoolSetAttribute$address() {
        return cudaMemPoolSetAttribute.ADDR;
    }

    /** {@code cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t memPool, enum cudaMemPoolAttr attr, void *value)} */
    public static int cudaMemPoolSetAttribute(MemorySegment memPool, int attr, MemorySegment value) {
        try {
            return (int) cudaMemPoolSetAttribute.HANDLE.invokeExact(memPool, attr, value);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMemPoolGetAttribute {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMemPoolGetAttribute");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMemPoolGetAttribute$descriptor() {
        return cudaMemPoolGetAttribute.DESC;
    }

    public static MethodHandle cudaMemPoolGetAttribute$handle() {
        return cudaMemPoolGetAttribute.HANDLE;
    }

    public static MemorySegment cudaMemPoolGetAttribute$address() {
        return cudaMemPoolGetAttribute.ADDR;
    }

    /** {@code cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t memPool, enum cudaMemPoolAttr attr, void *value)} */
    public static int cudaMemPoolGetAttribute(MemorySegment memPool, int attr, MemorySegment value) {
        try {
            return (int) cudaMemPoolGetAttribute.HANDLE.invokeExact(memPool, attr, value);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaMemPoolTrimTo {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG);
        static final MemorySegment ADDR = SystemDowncalls.address(NativeLibraries.cudart(), "cudaMemPoolTrimTo");
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(ADDR, DESC);
    }

    public static FunctionDescriptor cudaMemPoolTrimTo$descriptor() {
        return cudaMemPoolTrimTo.DESC;
    }

    public static MethodHandle cudaMemPoolTrimTo$handle() {
        return cudaMemPoolTrimTo.HANDLE;
    }

    public static MemorySegment cudaMemPoolTrimTo$address() {
        return cudaMemPoolTrimTo.ADDR;
    }

    /** {@code cudaError_t cudaMemPoolTrimTo(cudaMemPool_t memPool, size_t minBytesToKeep)} */
    public static int cudaMemPoolTrimTo(MemorySegment memPool, long minBytesToKeep) {
        try {
            return (int) cudaMemPoolTrimTo.HANDLE.invokeExact(memPool, minBytesToKeep);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

}
