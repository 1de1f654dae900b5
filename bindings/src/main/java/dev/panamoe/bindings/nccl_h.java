package dev.panamoe.bindings;

import static dev.panamoe.bindings.panamoe_h.C_INT;
import static dev.panamoe.bindings.panamoe_h.C_LONG;
import static dev.panamoe.bindings.panamoe_h.C_POINTER;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The subset of NCCL (libnccl.so.2) PanaMoE uses, in jextract's shape: a holder class per
 * function (loaded on first use) and a typed static wrapper. size_t is C_LONG (LP64); the
 * communicator (ncclComm_t) and the stream (cudaStream_t) are pointers; ncclUniqueId is passed by
 * value to ncclCommInitRank. Call {@link NativeLibraries#nccl()} first: it fails with a reason
 * when the library is missing.
 */
public final class nccl_h {
    private nccl_h() {}

    // ncclResult_t
    public static final int ncclSuccess = 0;
    public static final int ncclUnhandledCudaError = 1;
    public static final int ncclSystemError = 2;
    public static final int ncclInternalError = 3;
    public static final int ncclInvalidArgument = 4;
    public static final int ncclInvalidUsage = 5;
    public static final int ncclRemoteError = 6;
    public static final int ncclInProgress = 7;
    // ncclDataType_t
    public static final int ncclInt32 = 2;
    public static final int ncclFloat32 = 7;
    public static final int ncclBfloat16 = 9;
    // ncclRedOp_t
    public static final int ncclSum = 0;
    /** NCCL_UNIQUE_ID_BYTES */
    public static final int NCCL_UNIQUE_ID_BYTES = 128;

    private static final class ncclGetVersion {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGetVersion", DESC);
    }

    public static FunctionDescriptor ncclGetVersion$descriptor() {
        return ncclGetVersion.DESC;
    }

    public static MethodHandle ncclGetVersion$handle() {
        return ncclGetVersion.HANDLE;
    }

    /** {@code ncclResult_t ncclGetVersion(int *version)}; version = major*10000 + minor*100 + patch. */
    public static int ncclGetVersion(MemorySegment version) {
        try {
            return (int) ncclGetVersion.HANDLE.invokeExact(version);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclGetUniqueId {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGetUniqueId", DESC);
    }

    public static FunctionDescriptor ncclGetUniqueId$descriptor() {
        return ncclGetUniqueId.DESC;
    }

    public static MethodHandle ncclGetUniqueId$handle() {
        return ncclGetUniqueId.HANDLE;
    }

    /** {@code ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId)}; needs no GPU. */
    public static int ncclGetUniqueId(MemorySegment uniqueId) {
        try {
            return (int) ncclGetUniqueId.HANDLE.invokeExact(uniqueId);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommInitRank {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, ncclUniqueId.layout(), C_INT);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommInitRank", DESC);
    }

    public static FunctionDescriptor ncclCommInitRank$descriptor() {
        return ncclCommInitRank.DESC;
    }

    public static MethodHandle ncclCommInitRank$handle() {
        return ncclCommInitRank.HANDLE;
    }

    /** {@code ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank)}; commId by value. */
    public static int ncclCommInitRank(MemorySegment comm, int nranks, MemorySegment commId, int rank) {
        try {
            return (int) ncclCommInitRank.HANDLE.invokeExact(comm, nranks, commId, rank);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommSplit {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommSplit", DESC);
    }

    public static FunctionDescriptor ncclCommSplit$descriptor() {
        return ncclCommSplit.DESC;
    }

    public static MethodHandle ncclCommSplit$handle() {
        return ncclCommSplit.HANDLE;
    }

    /** {@code ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config)}; config may be NULL. */
    public static int ncclCommSplit(MemorySegment comm, int color, int key, MemorySegment newcomm, MemorySegment config) {
        try {
            return (int) ncclCommSplit.HANDLE.invokeExact(comm, color, key, newcomm, config);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommDestroy {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommDestroy", DESC);
    }

    public static FunctionDescriptor ncclCommDestroy$descriptor() {
        return ncclCommDestroy.DESC;
    }

    public static MethodHandle ncclCommDestroy$handle() {
        return ncclCommDestroy.HANDLE;
    }

    /** {@code ncclResult_t ncclCommDestroy(ncclComm_t comm)}. */
    public static int ncclCommDestroy(MemorySegment comm) {
        try {
            return (int) ncclCommDestroy.HANDLE.invokeExact(comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommAbort {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommAbort", DESC);
    }

    public static FunctionDescriptor ncclCommAbort$descriptor() {
        return ncclCommAbort.DESC;
    }

    public static MethodHandle ncclCommAbort$handle() {
        return ncclCommAbort.HANDLE;
    }

    /** {@code ncclResult_t ncclCommAbort(ncclComm_t comm)}. */
    public static int ncclCommAbort(MemorySegment comm) {
        try {
            return (int) ncclCommAbort.HANDLE.invokeExact(comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommGetAsyncError {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommGetAsyncError", DESC);
    }

    public static FunctionDescriptor ncclCommGetAsyncError$descriptor() {
        return ncclCommGetAsyncError.DESC;
    }

    public static MethodHandle ncclCommGetAsyncError$handle() {
        return ncclCommGetAsyncError.HANDLE;
    }

    /** {@code ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError)}. */
    public static int ncclCommGetAsyncError(MemorySegment comm, MemorySegment asyncError) {
        try {
            return (int) ncclCommGetAsyncError.HANDLE.invokeExact(comm, asyncError);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommCount {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommCount", DESC);
    }

    public static FunctionDescriptor ncclCommCount$descriptor() {
        return ncclCommCount.DESC;
    }

    public static MethodHandle ncclCommCount$handle() {
        return ncclCommCount.HANDLE;
    }

    /** {@code ncclResult_t ncclCommCount(const ncclComm_t comm, int *count)}. */
    public static int ncclCommCount(MemorySegment comm, MemorySegment count) {
        try {
            return (int) ncclCommCount.HANDLE.invokeExact(comm, count);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclCommUserRank {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclCommUserRank", DESC);
    }

    public static FunctionDescriptor ncclCommUserRank$descriptor() {
        return ncclCommUserRank.DESC;
    }

    public static MethodHandle ncclCommUserRank$handle() {
        return ncclCommUserRank.HANDLE;
    }

    /** {@code ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank)}. */
    public static int ncclCommUserRank(MemorySegment comm, MemorySegment rank) {
        try {
            return (int) ncclCommUserRank.HANDLE.invokeExact(comm, rank);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclGetErrorString {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER, C_INT);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGetErrorString", DESC);
    }

    public static FunctionDescriptor ncclGetErrorString$descriptor() {
        return ncclGetErrorString.DESC;
    }

    public static MethodHandle ncclGetErrorString$handle() {
        return ncclGetErrorString.HANDLE;
    }

    /** {@code const char *ncclGetErrorString(ncclResult_t result)}. */
    public static MemorySegment ncclGetErrorString(int result) {
        try {
            return (MemorySegment) ncclGetErrorString.HANDLE.invokeExact(result);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclGetLastError {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGetLastError", DESC);
    }

    public static FunctionDescriptor ncclGetLastError$descriptor() {
        return ncclGetLastError.DESC;
    }

    public static MethodHandle ncclGetLastError$handle() {
        return ncclGetLastError.HANDLE;
    }

    /** {@code const char *ncclGetLastError(ncclComm_t comm)}; comm may be NULL. */
    public static MemorySegment ncclGetLastError(MemorySegment comm) {
        try {
            return (MemorySegment) ncclGetLastError.HANDLE.invokeExact(comm);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclAllReduce {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_LONG, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclAllReduce", DESC);
    }

    public static FunctionDescriptor ncclAllReduce$descriptor() {
        return ncclAllReduce.DESC;
    }

    public static MethodHandle ncclAllReduce$handle() {
        return ncclAllReduce.HANDLE;
    }

    /** {@code ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)}. */
    public static int ncclAllReduce(MemorySegment sendbuff, MemorySegment recvbuff, long count, int datatype, int op, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclAllReduce.HANDLE.invokeExact(sendbuff, recvbuff, count, datatype, op, comm, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclReduceScatter {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_LONG, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclReduceScatter", DESC);
    }

    public static FunctionDescriptor ncclReduceScatter$descriptor() {
        return ncclReduceScatter.DESC;
    }

    public static MethodHandle ncclReduceScatter$handle() {
        return ncclReduceScatter.HANDLE;
    }

    /** {@code ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)}. */
    public static int ncclReduceScatter(MemorySegment sendbuff, MemorySegment recvbuff, long recvcount, int datatype, int op, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclReduceScatter.HANDLE.invokeExact(sendbuff, recvbuff, recvcount, datatype, op, comm, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclAllGather {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_LONG, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclAllGather", DESC);
    }

    public static FunctionDescriptor ncclAllGather$descriptor() {
        return ncclAllGather.DESC;
    }

    public static MethodHandle ncclAllGather$handle() {
        return ncclAllGather.HANDLE;
    }

    /** {@code ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream)}. */
    public static int ncclAllGather(MemorySegment sendbuff, MemorySegment recvbuff, long sendcount, int datatype, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclAllGather.HANDLE.invokeExact(sendbuff, recvbuff, sendcount, datatype, comm, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclBroadcast {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_LONG, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclBroadcast", DESC);
    }

    public static FunctionDescriptor ncclBroadcast$descriptor() {
        return ncclBroadcast.DESC;
    }

    public static MethodHandle ncclBroadcast$handle() {
        return ncclBroadcast.HANDLE;
    }

    /** {@code ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream)}. */
    public static int ncclBroadcast(MemorySegment sendbuff, MemorySegment recvbuff, long count, int datatype, int root, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclBroadcast.HANDLE.invokeExact(sendbuff, recvbuff, count, datatype, root, comm, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclSend {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclSend", DESC);
    }

    public static FunctionDescriptor ncclSend$descriptor() {
        return ncclSend.DESC;
    }

    public static MethodHandle ncclSend$handle() {
        return ncclSend.HANDLE;
    }

    /** {@code ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm, cudaStream_t stream)}. */
    public static int ncclSend(MemorySegment sendbuff, long count, int datatype, int peer, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclSend.HANDLE.invokeExact(sendbuff, count, datatype, peer, comm, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclRecv {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG, C_INT, C_INT, C_POINTER, C_POINTER);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclRecv", DESC);
    }

    public static FunctionDescriptor ncclRecv$descriptor() {
        return ncclRecv.DESC;
    }

    public static MethodHandle ncclRecv$handle() {
        return ncclRecv.HANDLE;
    }

    /** {@code ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm, cudaStream_t stream)}. */
    public static int ncclRecv(MemorySegment recvbuff, long count, int datatype, int peer, MemorySegment comm, MemorySegment stream) {
        try {
            return (int) ncclRecv.HANDLE.invokeExact(recvbuff, count, datatype, peer, comm, stream);
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclGroupStart {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGroupStart", DESC);
    }

    public static FunctionDescriptor ncclGroupStart$descriptor() {
        return ncclGroupStart.DESC;
    }

    public static MethodHandle ncclGroupStart$handle() {
        return ncclGroupStart.HANDLE;
    }

    /** {@code ncclResult_t ncclGroupStart(void)}. */
    public static int ncclGroupStart() {
        try {
            return (int) ncclGroupStart.HANDLE.invokeExact();
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }

    private static final class ncclGroupEnd {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT);
        static final MethodHandle HANDLE = SystemDowncalls.downcall(NativeLibraries.nccl(), "ncclGroupEnd", DESC);
    }

    public static FunctionDescriptor ncclGroupEnd$descriptor() {
        return ncclGroupEnd.DESC;
    }

    public static MethodHandle ncclGroupEnd$handle() {
        return ncclGroupEnd.HANDLE;
    }

    /** {@code ncclResult_t ncclGroupEnd(void)}. */
    public static int ncclGroupEnd() {
        try {
            return (int) ncclGroupEnd.HANDLE.invokeExact();
        } catch (Throwable e) {
            throw SystemDowncalls.rethrow(e);
        }
    }
}
