package dev.panamoe.bindings;

import static dev.panamoe.bindings.panamoe_h.C_INT;
import static dev.panamoe.bindings.panamoe_h.C_POINTER;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The subset of the CUDA runtime (libcudart.so.13) PanaMoE uses so far, in jextract's shape.
 * Call {@link NativeLibraries#cudart()} first: it fails with a reason when the library is
 * missing, whereas a holder class here would fail with an initialisation error.
 */
public final class cudart_h {
    private cudart_h() {}

    public static final int cudaSuccess = 0;

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        return SystemDowncalls.downcall(NativeLibraries.cudart(), name, descriptor);
    }

    private static final class cudaGetDeviceCount {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = downcall("cudaGetDeviceCount", DESC);
    }

    /** {@code cudaError_t cudaGetDeviceCount(int *count)} */
    public static int cudaGetDeviceCount(MemorySegment count) {
        try {
            return (int) cudaGetDeviceCount.HANDLE.invokeExact(count);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaRuntimeGetVersion {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = downcall("cudaRuntimeGetVersion", DESC);
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
        static final MethodHandle HANDLE = downcall("cudaDriverGetVersion", DESC);
    }

    /** {@code cudaError_t cudaDriverGetVersion(int *driverVersion)} */
    public static int cudaDriverGetVersion(MemorySegment driverVersion) {
        try {
            return (int) cudaDriverGetVersion.HANDLE.invokeExact(driverVersion);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class cudaGetErrorString {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER, C_INT);
        static final MethodHandle HANDLE = downcall("cudaGetErrorString", DESC);
    }

    /** {@code const char *cudaGetErrorString(cudaError_t error)} */
    public static MemorySegment cudaGetErrorString(int error) {
        try {
            return (MemorySegment) cudaGetErrorString.HANDLE.invokeExact(error);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }
}
