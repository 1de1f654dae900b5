package dev.panamoe.bindings;

import static dev.panamoe.bindings.panamoe_h.C_INT;
import static dev.panamoe.bindings.panamoe_h.C_POINTER;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The subset of Open MPI 4.1 (libmpi.so.40) PanaMoE uses, in jextract's shape: one holder class
 * per function (loaded on first use), a typed static wrapper per function, and Open MPI's
 * predefined handles. Open MPI defines MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ... as the addresses
 * of global objects (ompi_mpi_comm_world, ...), which jextract cannot turn into constants; they
 * are here as {@code <global>$segment()} (the symbol's address, as jextract names a global) and
 * under their MPI names ({@link #MPI_COMM_WORLD()}, ...). Call {@link NativeLibraries#mpi()}
 * first: it fails with a reason when the library is missing.
 */
@SuppressWarnings("restricted")
public final class mpi_h {
    private mpi_h() {}

    public static final int MPI_SUCCESS = 0;
    public static final int MPI_ERR_TRUNCATE = 15;
    /** Open MPI's MPI_MAX_LIBRARY_VERSION_STRING. */
    public static final int MPI_MAX_LIBRARY_VERSION_STRING = 256;
    /** Open MPI's MPI_MAX_ERROR_STRING (OPAL_MAX_ERROR_STRING). */
    public static final int MPI_MAX_ERROR_STRING = 256;
    public static final int MPI_UNDEFINED = -32766;
    public static final int MPI_THREAD_SINGLE = 0;
    public static final int MPI_THREAD_FUNNELED = 1;
    public static final int MPI_THREAD_SERIALIZED = 2;
    public static final int MPI_THREAD_MULTIPLE = 3;
    /** Open MPI's MPI_Comm, MPI_Datatype, MPI_Op, MPI_Request and MPI_Errhandler are pointers. */
    public static final AddressLayout MPI_HANDLE = C_POINTER;
    /** sizeof(MPI_Status) in Open MPI 4.1: int MPI_SOURCE, MPI_TAG, MPI_ERROR, _cancelled; size_t _ucount. */
    public static final long MPI_STATUS_SIZE = 24;

    /** MPI_STATUS_IGNORE is ((MPI_Status *) 0). */
    public static MemorySegment MPI_STATUS_IGNORE() {
        return MemorySegment.NULL;
    }

    /** MPI_IN_PLACE is ((void *) 1) in Open MPI. */
    public static MemorySegment MPI_IN_PLACE() {
        return MemorySegment.ofAddress(1);
    }

    private static MemorySegment global(String name) {
        return NativeLibraries.mpi().lookup().find(name).orElseThrow(
                () -> new UnsupportedOperationException(name + " is not exported by " + NativeLibraries.mpi().path()
                        + " (is it Open MPI 4.x?)"));
    }

    private static final class ompi_mpi_comm_world {
        static final MemorySegment SEGMENT = global("ompi_mpi_comm_world");
    }

    /** The address of Open MPI's global ompi_mpi_comm_world. */
    public static MemorySegment ompi_mpi_comm_world$segment() {
        return ompi_mpi_comm_world.SEGMENT;
    }

    /** {@code #define MPI_COMM_WORLD OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world)} */
    public static MemorySegment MPI_COMM_WORLD() {
        return ompi_mpi_comm_world.SEGMENT;
    }

    private static final class ompi_mpi_comm_null {
        static final MemorySegment SEGMENT = global("ompi_mpi_comm_null");
    }

    /** The address of Open MPI's global ompi_mpi_comm_null. */
    public static MemorySegment ompi_mpi_comm_null$segment() {
        return ompi_mpi_comm_null.SEGMENT;
    }

    /** {@code #define MPI_COMM_NULL OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_null)} */
    public static MemorySegment MPI_COMM_NULL() {
        return ompi_mpi_comm_null.SEGMENT;
    }

    private static final class ompi_request_null {
        static final MemorySegment SEGMENT = global("ompi_request_null");
    }

    /** The address of Open MPI's global ompi_request_null. */
    public static MemorySegment ompi_request_null$segment() {
        return ompi_request_null.SEGMENT;
    }

    /** {@code #define MPI_REQUEST_NULL OMPI_PREDEFINED_GLOBAL(MPI_Request, ompi_request_null)} */
    public static MemorySegment MPI_REQUEST_NULL() {
        return ompi_request_null.SEGMENT;
    }

    private static final class ompi_mpi_float {
        static final MemorySegment SEGMENT = global("ompi_mpi_float");
    }

    /** The address of Open MPI's global ompi_mpi_float. */
    public static MemorySegment ompi_mpi_float$segment() {
        return ompi_mpi_float.SEGMENT;
    }

    /** {@code #define MPI_FLOAT OMPI_PREDEFINED_GLOBAL(MPI_Datatype, ompi_mpi_float)} */
    public static MemorySegment MPI_FLOAT() {
        return ompi_mpi_float.SEGMENT;
    }

    private static final class ompi_mpi_int {
        static final MemorySegment SEGMENT = global("ompi_mpi_int");
    }

    /** The address of Open MPI's global ompi_mpi_int. */
    public static MemorySegment ompi_mpi_int$segment() {
        return ompi_mpi_int.SEGMENT;
    }

    /** {@code #define MPI_INT OMPI_PREDEFINED_GLOBAL(MPI_Datatype, ompi_mpi_int)} */
    public static MemorySegment MPI_INT() {
        return ompi_mpi_int.SEGMENT;
    }

    private static final class ompi_mpi_uint16_t {
        static final MemorySegment SEGMENT = global("ompi_mpi_uint16_t");
    }

    /** {@code #define MPI_UINT16_T OMPI_PREDEFINED_GLOBAL(MPI_Datatype, ompi_mpi_uint16_t)} */
    public static MemorySegment MPI_UINT16_T() {
        return ompi_mpi_uint16_t.SEGMENT;
    }

    private static final class ompi_mpi_op_sum {
        static final MemorySegment SEGMENT = global("ompi_mpi_op_sum");
    }

    /** The address of Open MPI's global ompi_mpi_op_sum. */
    public static MemorySegment ompi_mpi_op_sum$segment() {
        return ompi_mpi_op_sum.SEGMENT;
    }

    /** {@code #define MPI_SUM OMPI_PREDEFINED_GLOBAL(MPI_Op, ompi_mpi_op_sum)} */
    public static MemorySegment MPI_SUM() {
        return ompi_mpi_op_sum.SEGMENT;
    }

    private static final class ompi_mpi_errors_return {
        static final MemorySegment SEGMENT = global("ompi_mpi_errors_return");
    }

    /** The address of Open MPI's global ompi_mpi_errors_return. */
    public static MemorySegment ompi_mpi_errors_return$segment() {
        return ompi_mpi_errors_return.SEGMENT;
    }

    /** {@code #define MPI_ERRORS_RETURN OMPI_PREDEFINED_GLOBAL(MPI_Errhandler, ompi_mpi_errors_return)} */
    public static MemorySegment MPI_ERRORS_RETURN() {
        return ompi_mpi_errors_return.SEGMENT;
    }

    private static final class MPI_Get_library_version {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Get_library_version", DESC);
    }

    public static FunctionDescriptor MPI_Get_library_version$descriptor() {
        return MPI_Get_library_version.DESC;
    }

    public static MethodHandle MPI_Get_library_version$handle() {
        return MPI_Get_library_version.HANDLE;
    }

    /** {@code int MPI_Get_library_version(char *version, int *resultlen)}; callable before MPI_Init. */
    public static int MPI_Get_library_version(MemorySegment version, MemorySegment resultlen) {
        try {
            return (int) MPI_Get_library_version.HANDLE.invokeExact(version, resultlen);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Initialized {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Initialized", DESC);
    }

    public static FunctionDescriptor MPI_Initialized$descriptor() {
        return MPI_Initialized.DESC;
    }

    public static MethodHandle MPI_Initialized$handle() {
        return MPI_Initialized.HANDLE;
    }

    /** {@code int MPI_Initialized(int *flag)}; callable before MPI_Init. */
    public static int MPI_Initialized(MemorySegment flag) {
        try {
            return (int) MPI_Initialized.HANDLE.invokeExact(flag);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Finalized {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Finalized", DESC);
    }

    public static FunctionDescriptor MPI_Finalized$descriptor() {
        return MPI_Finalized.DESC;
    }

    public static MethodHandle MPI_Finalized$handle() {
        return MPI_Finalized.HANDLE;
    }

    /** {@code int MPI_Finalized(int *flag)}; callable after MPI_Finalize. */
    public static int MPI_Finalized(MemorySegment flag) {
        try {
            return (int) MPI_Finalized.HANDLE.invokeExact(flag);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Init_thread {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Init_thread", DESC);
    }

    public static FunctionDescriptor MPI_Init_thread$descriptor() {
        return MPI_Init_thread.DESC;
    }

    public static MethodHandle MPI_Init_thread$handle() {
        return MPI_Init_thread.HANDLE;
    }

    /** {@code int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)}. */
    public static int MPI_Init_thread(MemorySegment argc, MemorySegment argv, int required, MemorySegment provided) {
        try {
            return (int) MPI_Init_thread.HANDLE.invokeExact(argc, argv, required, provided);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Finalize {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Finalize", DESC);
    }

    public static FunctionDescriptor MPI_Finalize$descriptor() {
        return MPI_Finalize.DESC;
    }

    public static MethodHandle MPI_Finalize$handle() {
        return MPI_Finalize.HANDLE;
    }

    /** {@code int MPI_Finalize(void)}. */
    public static int MPI_Finalize() {
        try {
            return (int) MPI_Finalize.HANDLE.invokeExact();
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Abort {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Abort", DESC);
    }

    public static FunctionDescriptor MPI_Abort$descriptor() {
        return MPI_Abort.DESC;
    }

    public static MethodHandle MPI_Abort$handle() {
        return MPI_Abort.HANDLE;
    }

    /** {@code int MPI_Abort(MPI_Comm comm, int errorcode)}. */
    public static int MPI_Abort(MemorySegment comm, int errorcode) {
        try {
            return (int) MPI_Abort.HANDLE.invokeExact(comm, errorcode);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Error_string {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Error_string", DESC);
    }

    public static FunctionDescriptor MPI_Error_string$descriptor() {
        return MPI_Error_string.DESC;
    }

    public static MethodHandle MPI_Error_string$handle() {
        return MPI_Error_string.HANDLE;
    }

    /** {@code int MPI_Error_string(int errorcode, char *string, int *resultlen)}. */
    public static int MPI_Error_string(int errorcode, MemorySegment string, MemorySegment resultlen) {
        try {
            return (int) MPI_Error_string.HANDLE.invokeExact(errorcode, string, resultlen);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Comm_rank {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Comm_rank", DESC);
    }

    public static FunctionDescriptor MPI_Comm_rank$descriptor() {
        return MPI_Comm_rank.DESC;
    }

    public static MethodHandle MPI_Comm_rank$handle() {
        return MPI_Comm_rank.HANDLE;
    }

    /** {@code int MPI_Comm_rank(MPI_Comm comm, int *rank)}. */
    public static int MPI_Comm_rank(MemorySegment comm, MemorySegment rank) {
        try {
            return (int) MPI_Comm_rank.HANDLE.invokeExact(comm, rank);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Comm_size {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Comm_size", DESC);
    }

    public static FunctionDescriptor MPI_Comm_size$descriptor() {
        return MPI_Comm_size.DESC;
    }

    public static MethodHandle MPI_Comm_size$handle() {
        return MPI_Comm_size.HANDLE;
    }

    /** {@code int MPI_Comm_size(MPI_Comm comm, int *size)}. */
    public static int MPI_Comm_size(MemorySegment comm, MemorySegment size) {
        try {
            return (int) MPI_Comm_size.HANDLE.invokeExact(comm, size);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Comm_split {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Comm_split", DESC);
    }

    public static FunctionDescriptor MPI_Comm_split$descriptor() {
        return MPI_Comm_split.DESC;
    }

    public static MethodHandle MPI_Comm_split$handle() {
        return MPI_Comm_split.HANDLE;
    }

    /** {@code int MPI_Comm_split(MPI_Comm comm, int color, int key, MPI_Comm *newcomm)}. */
    public static int MPI_Comm_split(MemorySegment comm, int color, int key, MemorySegment newcomm) {
        try {
            return (int) MPI_Comm_split.HANDLE.invokeExact(comm, color, key, newcomm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Comm_free {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Comm_free", DESC);
    }

    public static FunctionDescriptor MPI_Comm_free$descriptor() {
        return MPI_Comm_free.DESC;
    }

    public static MethodHandle MPI_Comm_free$handle() {
        return MPI_Comm_free.HANDLE;
    }

    /** {@code int MPI_Comm_free(MPI_Comm *comm)}. */
    public static int MPI_Comm_free(MemorySegment comm) {
        try {
            return (int) MPI_Comm_free.HANDLE.invokeExact(comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Comm_set_errhandler {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Comm_set_errhandler", DESC);
    }

    public static FunctionDescriptor MPI_Comm_set_errhandler$descriptor() {
        return MPI_Comm_set_errhandler.DESC;
    }

    public static MethodHandle MPI_Comm_set_errhandler$handle() {
        return MPI_Comm_set_errhandler.HANDLE;
    }

    /** {@code int MPI_Comm_set_errhandler(MPI_Comm comm, MPI_Errhandler errhandler)}. */
    public static int MPI_Comm_set_errhandler(MemorySegment comm, MemorySegment errhandler) {
        try {
            return (int) MPI_Comm_set_errhandler.HANDLE.invokeExact(comm, errhandler);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Test {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Test", DESC);
    }

    public static FunctionDescriptor MPI_Test$descriptor() {
        return MPI_Test.DESC;
    }

    public static MethodHandle MPI_Test$handle() {
        return MPI_Test.HANDLE;
    }

    /** {@code int MPI_Test(MPI_Request *request, int *flag, MPI_Status *status)}. */
    public static int MPI_Test(MemorySegment request, MemorySegment flag, MemorySegment status) {
        try {
            return (int) MPI_Test.HANDLE.invokeExact(request, flag, status);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Get_count {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Get_count", DESC);
    }

    public static FunctionDescriptor MPI_Get_count$descriptor() {
        return MPI_Get_count.DESC;
    }

    public static MethodHandle MPI_Get_count$handle() {
        return MPI_Get_count.HANDLE;
    }

    /** {@code int MPI_Get_count(const MPI_Status *status, MPI_Datatype datatype, int *count)}. */
    public static int MPI_Get_count(MemorySegment status, MemorySegment datatype, MemorySegment count) {
        try {
            return (int) MPI_Get_count.HANDLE.invokeExact(status, datatype, count);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Ibarrier {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Ibarrier", DESC);
    }

    public static FunctionDescriptor MPI_Ibarrier$descriptor() {
        return MPI_Ibarrier.DESC;
    }

    public static MethodHandle MPI_Ibarrier$handle() {
        return MPI_Ibarrier.HANDLE;
    }

    /** {@code int MPI_Ibarrier(MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Ibarrier(MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Ibarrier.HANDLE.invokeExact(comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Iallreduce {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Iallreduce", DESC);
    }

    public static FunctionDescriptor MPI_Iallreduce$descriptor() {
        return MPI_Iallreduce.DESC;
    }

    public static MethodHandle MPI_Iallreduce$handle() {
        return MPI_Iallreduce.HANDLE;
    }

    /** {@code int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Iallreduce(MemorySegment sendbuf, MemorySegment recvbuf, int count, MemorySegment datatype, MemorySegment op, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Iallreduce.HANDLE.invokeExact(sendbuf, recvbuf, count, datatype, op, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Ireduce_scatter_block {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Ireduce_scatter_block", DESC);
    }

    public static FunctionDescriptor MPI_Ireduce_scatter_block$descriptor() {
        return MPI_Ireduce_scatter_block.DESC;
    }

    public static MethodHandle MPI_Ireduce_scatter_block$handle() {
        return MPI_Ireduce_scatter_block.HANDLE;
    }

    /** {@code int MPI_Ireduce_scatter_block(const void *sendbuf, void *recvbuf, int recvcount, MPI_Datatype datatype, MPI_Op op, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Ireduce_scatter_block(MemorySegment sendbuf, MemorySegment recvbuf, int recvcount, MemorySegment datatype, MemorySegment op, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Ireduce_scatter_block.HANDLE.invokeExact(sendbuf, recvbuf, recvcount, datatype, op, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Iallgather {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER, C_POINTER, C_INT, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Iallgather", DESC);
    }

    public static FunctionDescriptor MPI_Iallgather$descriptor() {
        return MPI_Iallgather.DESC;
    }

    public static MethodHandle MPI_Iallgather$handle() {
        return MPI_Iallgather.HANDLE;
    }

    /** {@code int MPI_Iallgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount, MPI_Datatype recvtype, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Iallgather(MemorySegment sendbuf, int sendcount, MemorySegment sendtype, MemorySegment recvbuf, int recvcount, MemorySegment recvtype, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Iallgather.HANDLE.invokeExact(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Ialltoallv {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Ialltoallv", DESC);
    }

    public static FunctionDescriptor MPI_Ialltoallv$descriptor() {
        return MPI_Ialltoallv.DESC;
    }

    public static MethodHandle MPI_Ialltoallv$handle() {
        return MPI_Ialltoallv.HANDLE;
    }

    /** {@code int MPI_Ialltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[], MPI_Datatype sendtype, void *recvbuf, const int recvcounts[], const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Ialltoallv(MemorySegment sendbuf, MemorySegment sendcounts, MemorySegment sdispls, MemorySegment sendtype, MemorySegment recvbuf, MemorySegment recvcounts, MemorySegment rdispls, MemorySegment recvtype, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Ialltoallv.HANDLE.invokeExact(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts, rdispls, recvtype, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Ialltoall {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER, C_POINTER, C_INT, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Ialltoall", DESC);
    }

    public static FunctionDescriptor MPI_Ialltoall$descriptor() {
        return MPI_Ialltoall.DESC;
    }

    public static MethodHandle MPI_Ialltoall$handle() {
        return MPI_Ialltoall.HANDLE;
    }

    /** {@code int MPI_Ialltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf, int recvcount, MPI_Datatype recvtype, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Ialltoall(MemorySegment sendbuf, int sendcount, MemorySegment sendtype, MemorySegment recvbuf, int recvcount, MemorySegment recvtype, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Ialltoall.HANDLE.invokeExact(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Ibcast {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Ibcast", DESC);
    }

    public static FunctionDescriptor MPI_Ibcast$descriptor() {
        return MPI_Ibcast.DESC;
    }

    public static MethodHandle MPI_Ibcast$handle() {
        return MPI_Ibcast.HANDLE;
    }

    /** {@code int MPI_Ibcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Ibcast(MemorySegment buffer, int count, MemorySegment datatype, int root, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Ibcast.HANDLE.invokeExact(buffer, count, datatype, root, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Isend {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Isend", DESC);
    }

    public static FunctionDescriptor MPI_Isend$descriptor() {
        return MPI_Isend.DESC;
    }

    public static MethodHandle MPI_Isend$handle() {
        return MPI_Isend.HANDLE;
    }

    /** {@code int MPI_Isend(const void *buf, int count, MPI_Datatype datatype, int dest, int tag, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Isend(MemorySegment buf, int count, MemorySegment datatype, int dest, int tag, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Isend.HANDLE.invokeExact(buf, count, datatype, dest, tag, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Irecv {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Irecv", DESC);
    }

    public static FunctionDescriptor MPI_Irecv$descriptor() {
        return MPI_Irecv.DESC;
    }

    public static MethodHandle MPI_Irecv$handle() {
        return MPI_Irecv.HANDLE;
    }

    /** {@code int MPI_Irecv(void *buf, int count, MPI_Datatype datatype, int source, int tag, MPI_Comm comm, MPI_Request *request)}. */
    public static int MPI_Irecv(MemorySegment buf, int count, MemorySegment datatype, int source, int tag, MemorySegment comm, MemorySegment request) {
        try {
            return (int) MPI_Irecv.HANDLE.invokeExact(buf, count, datatype, source, tag, comm, request);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Allreduce {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_INT, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Allreduce", DESC);
    }

    public static FunctionDescriptor MPI_Allreduce$descriptor() {
        return MPI_Allreduce.DESC;
    }

    public static MethodHandle MPI_Allreduce$handle() {
        return MPI_Allreduce.HANDLE;
    }

    /** {@code int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op, MPI_Comm comm)}. */
    public static int MPI_Allreduce(MemorySegment sendbuf, MemorySegment recvbuf, int count, MemorySegment datatype, MemorySegment op, MemorySegment comm) {
        try {
            return (int) MPI_Allreduce.HANDLE.invokeExact(sendbuf, recvbuf, count, datatype, op, comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Alltoallv {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Alltoallv", DESC);
    }

    public static FunctionDescriptor MPI_Alltoallv$descriptor() {
        return MPI_Alltoallv.DESC;
    }

    public static MethodHandle MPI_Alltoallv$handle() {
        return MPI_Alltoallv.HANDLE;
    }

    /** {@code int MPI_Alltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[], MPI_Datatype sendtype, void *recvbuf, const int recvcounts[], const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm)}. */
    public static int MPI_Alltoallv(MemorySegment sendbuf, MemorySegment sendcounts, MemorySegment sdispls, MemorySegment sendtype, MemorySegment recvbuf, MemorySegment recvcounts, MemorySegment rdispls, MemorySegment recvtype, MemorySegment comm) {
        try {
            return (int) MPI_Alltoallv.HANDLE.invokeExact(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts, rdispls, recvtype, comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Barrier {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Barrier", DESC);
    }

    public static FunctionDescriptor MPI_Barrier$descriptor() {
        return MPI_Barrier.DESC;
    }

    public static MethodHandle MPI_Barrier$handle() {
        return MPI_Barrier.HANDLE;
    }

    /** {@code int MPI_Barrier(MPI_Comm comm)}. */
    public static int MPI_Barrier(MemorySegment comm) {
        try {
            return (int) MPI_Barrier.HANDLE.invokeExact(comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class MPI_Wtime {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(ValueLayout.JAVA_DOUBLE);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.mpi(), "MPI_Wtime", DESC);
    }

    public static FunctionDescriptor MPI_Wtime$descriptor() {
        return MPI_Wtime.DESC;
    }

    public static MethodHandle MPI_Wtime$handle() {
        return MPI_Wtime.HANDLE;
    }

    /** {@code double MPI_Wtime(void)}. */
    public static double MPI_Wtime() {
        try {
            return (double) MPI_Wtime.HANDLE.invokeExact();
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }
}
