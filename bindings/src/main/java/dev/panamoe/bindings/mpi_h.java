package dev.panamoe.bindings;

import static dev.panamoe.bindings.panamoe_h.C_INT;
import static dev.panamoe.bindings.panamoe_h.C_POINTER;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The subset of Open MPI (libmpi.so.40) PanaMoE uses so far, in jextract's shape. Call
 * {@link NativeLibraries#mpi()} first: it fails with a reason when the library is missing.
 */
public final class mpi_h {
    private mpi_h() {}

    public static final int MPI_SUCCESS = 0;
    /** Open MPI's MPI_MAX_LIBRARY_VERSION_STRING. */
    public static final int MPI_MAX_LIBRARY_VERSION_STRING = 256;

    private static final class MPI_Get_library_version {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE =
                SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Get_library_version", DESC);
    }

    /** {@code int MPI_Get_library_version(char *version, int *resultlen)}; callable before MPI_Init. */
    public static int MPI_Get_library_version(MemorySegment version, MemorySegment resultlen) {
        try {
            return (int) MPI_Get_library_version.HANDLE.invokeExact(version, resultlen);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }
}
