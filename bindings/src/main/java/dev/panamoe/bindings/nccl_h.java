package dev.panamoe.bindings;

import static dev.panamoe.bindings.panamoe_h.C_INT;
import static dev.panamoe.bindings.panamoe_h.C_POINTER;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The subset of NCCL (libnccl.so.2) PanaMoE uses so far, in jextract's shape. Call
 * {@link NativeLibraries#nccl()} first: it fails with a reason when the library is missing.
 */
public final class nccl_h {
    private nccl_h() {}

    public static final int ncclSuccess = 0;

    private static final class ncclGetVersion {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGetVersion", DESC);
    }

    /** {@code ncclResult_t ncclGetVersion(int *version)}: version = major*10000 + minor*100 + patch. */
    public static int ncclGetVersion(MemorySegment version) {
        try {
            return (int) ncclGetVersion.HANDLE.invokeExact(version);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }
}
