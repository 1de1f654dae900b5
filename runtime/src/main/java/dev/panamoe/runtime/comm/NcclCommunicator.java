package dev.panamoe.runtime.comm;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.NativeLibraries;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.bindings.nccl_h;
import dev.panamoe.bindings.ncclUniqueId;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.BackendUnavailableException;
import dev.panamoe.ops.CudaBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

/**
 * A communicator over NCCL (libnccl.so.2, bound through FFM) for tensors on one CUDA device per
 * rank. The unique id is made by rank 0 and broadcast over a bootstrap communicator (MPI across
 * processes, as nccl-tests does). All-to-allv is one ncclGroupStart/End of ncclSend/ncclRecv
 * pairs.
 *
 * <p>Ordering without the host. Each call records an event on the tensor's backend stream and
 * makes this communicator's stream wait for it (cudaStreamWaitEvent), enqueues the NCCL
 * operation there, records a second event after it and makes the backend stream wait for that:
 * the operation runs after the kernels that produced its input and before those that read its
 * output, while the call returns at once. The host never waits for a collective except in
 * {@link #barrier()} (whose point is that every rank has arrived) and {@link #close()}; what
 * the caller reads next it reads through the backend, which waits for its stream.
 *
 * <p>Errors and the timeout. A watchdog thread polls each pending operation's event
 * (cudaEventQuery, which never blocks) together with ncclCommGetAsyncError; an asynchronous
 * error, or an operation still running {@link #timeout()} after it was queued, aborts the NCCL
 * communicator (ncclCommAbort, which also ends its kernels, so a stream waiting on them runs
 * on), and the next call on this communicator throws the reason.
 *
 * <p>Not checked across ranks (NCCL cannot tell): that sendCounts match the peers' recvCounts, and
 * that send and recv sizes agree. Sums are NCCL's (identical on every rank of one call).
 */
public final class NcclCommunicator implements Communicator {
    private static final long WATCH_PAUSE_NANOS = 200_000;

    /** A queued operation: the event recorded after it on this communicator's stream, and its deadline. */
    private record Pending(String op, MemorySegment done, long deadline) {
    }

    private final MemorySegment comm;
    private final Device device;
    private final CudaBackend backend;
    private final MemorySegment stream;
    private final int rank;
    private final int size;
    private final Duration timeout;
    /** A one-element device buffer: barrier() is an all-reduce of it. */
    private final TensorScope scope;
    private final Tensor token;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment asyncError = arena.allocate(JAVA_INT);
    private final ConcurrentLinkedQueue<Pending> pending = new ConcurrentLinkedQueue<>();
    private final Thread watchdog;
    private volatile String brokenBy;
    private volatile boolean closed;

    private NcclCommunicator(MemorySegment comm, CudaBackend backend, int rank, int size, Duration timeout) {
        this.comm = comm;
        this.backend = backend;
        this.device = backend.device();
        this.rank = rank;
        this.size = size;
        this.timeout = timeout;
        CudaRuntime.setDevice(device.index());
        this.stream = CudaRuntime.streamCreate();
        this.scope = TensorScope.shared(backend);
        this.token = scope.allocate("nccl barrier", DType.I32, 1);
        this.watchdog = Thread.ofPlatform().daemon().name("nccl watchdog, rank " + rank + " of " + size)
                .start(this::watch);
    }

    // ---- the library ----

    /**
     * libnccl.so.2: from system property panamoe.nccl.library or NCCL_LIBRARY if set, else by
     * soname (LD_LIBRARY_PATH, ld.so.cache), else from the nvidia-nccl-cu13 Python wheel
     * (site-packages/nvidia/nccl/lib) of a usual Python installation. Throws
     * NativeLibraryUnavailableException saying everything it tried.
     */
    public static synchronized NativeLibraries.Loaded library() {
        if (System.getProperty(NativeLibraries.NCCL_PROPERTY) == null && System.getenv(NativeLibraries.NCCL_ENV) == null) {
            try {
                return NativeLibraries.nccl();
            } catch (NativeLibraryUnavailableException notOnPath) {
                List<Path> searched = wheelFolders();
                Optional<Path> wheel = searched.stream().map(d -> d.resolve("nvidia/nccl/lib/libnccl.so.2"))
                        .filter(Files::isRegularFile).findFirst();
                if (wheel.isEmpty()) {
                    // One line: what was tried, why not, what to do (the folders are many; the count says enough).
                    throw new NativeLibraryUnavailableException(NativeLibraries.NCCL + " unavailable: the dynamic linker"
                            + " cannot load it (" + NativeLibraries.dlopenError(NativeLibraries.NCCL) + ") and none of "
                            + searched.size() + " Python package folders holds the nvidia-nccl-cu13 wheel; pip install"
                            + " nvidia-nccl-cu13, or set NCCL_LIBRARY to its path", notOnPath);
                }
                System.setProperty(NativeLibraries.NCCL_PROPERTY, wheel.get().toString());
            }
        }
        return NativeLibraries.nccl();
    }

    /** NCCL's version as major*10000 + minor*100 + patch (e.g. 23007 for 2.30.7). */
    public static int version() {
        library();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment v = scratch.allocate(JAVA_INT);
            check(nccl_h.ncclGetVersion(v), "ncclGetVersion", MemorySegment.NULL);
            return v.get(JAVA_INT, 0);
        }
    }

    /** A fresh ncclUniqueId (128 bytes): needs no GPU. */
    public static byte[] uniqueId() {
        library();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment id = ncclUniqueId.allocate(scratch);
            check(nccl_h.ncclGetUniqueId(id), "ncclGetUniqueId", MemorySegment.NULL);
            return id.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    // ---- creation ----

    /**
     * Creates the NCCL communicator of the bootstrap group's ranks, this rank on device: checks
     * that the device is usable, broadcasts rank 0's unique id over bootstrap, then
     * ncclCommInitRank (after a barrier with the timeout, so that it starts only once every rank
     * has arrived). Collective over bootstrap.
     */
    public static NcclCommunicator create(Communicator bootstrap, Device device, Duration timeout) {
        if (device == null || device.isCpu()) {
            throw new IllegalArgumentException("device: NCCL needs a CUDA device, got " + device);
        }
        library();
        CudaBackend backend;
        try {
            backend = CudaBackend.get(device.index());
        } catch (BackendUnavailableException e) {
            throw new CommunicatorException("NCCL communicator for rank " + bootstrap.rank() + " on " + device
                    + " cannot be created: " + e.getMessage(), bootstrap.rank(), e);
        }
        try (TensorScope host = TensorScope.confined(dev.panamoe.ops.CpuBackend.get());
             Arena scratch = Arena.ofConfined()) {
            Tensor id = host.allocate("ncclUniqueId", DType.I32, nccl_h.NCCL_UNIQUE_ID_BYTES / 4);
            if (bootstrap.rank() == 0) {
                MemorySegment.copy(MemorySegment.ofArray(uniqueId()), 0, id.data(), 0, nccl_h.NCCL_UNIQUE_ID_BYTES);
            }
            bootstrap.broadcast(id, 0);
            bootstrap.barrier();
            MemorySegment idValue = ncclUniqueId.allocate(scratch);
            MemorySegment.copy(id.data(), 0, idValue, 0, nccl_h.NCCL_UNIQUE_ID_BYTES);
            MemorySegment out = scratch.allocate(panamoe_h.C_POINTER);
            CudaRuntime.setDevice(device.index());
            check(nccl_h.ncclCommInitRank(out, bootstrap.size(), idValue, bootstrap.rank()), "ncclCommInitRank", MemorySegment.NULL);
            return new NcclCommunicator(out.get(panamoe_h.C_POINTER, 0), backend, bootstrap.rank(), bootstrap.size(), timeout);
        }
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public String backendName() {
        return "nccl";
    }

    @Override
    public Duration timeout() {
        return timeout;
    }

    // ---- operations ----

    @Override
    public void allReduce(Tensor data) {
        checkTensor("data", data);
        CommArgs.checkSummable("data", data);
        begin();
        call(nccl_h.ncclAllReduce(data.data(), data.data(), data.numel(), type(data), nccl_h.ncclSum, comm, stream), "ncclAllReduce");
        end("allReduce");
    }

    @Override
    public void reduceScatter(Tensor in, Tensor out) {
        checkTensor("in", in);
        CommArgs.checkSummable("in", in);
        checkTensor("out", out);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks("in", in, out, size);
        begin();
        call(nccl_h.ncclReduceScatter(in.data(), out.data(), out.numel(), type(in), nccl_h.ncclSum, comm, stream),
                "ncclReduceScatter");
        end("reduceScatter");
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        checkTensor("in", in);
        checkTensor("out", out);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks("out", out, in, size);
        begin();
        call(nccl_h.ncclAllGather(in.data(), out.data(), in.numel(), type(in), comm, stream), "ncclAllGather");
        end("allGather");
    }

    @Override
    public void allToAllV(Tensor send, int[] sendCounts, Tensor recv, int[] recvCounts) {
        checkTensor("send", send);
        checkTensor("recv", recv);
        CommArgs.checkSameDtype("recv", recv, send);
        CommArgs.checkCounts("sendCounts", sendCounts, size, send);
        CommArgs.checkCounts("recvCounts", recvCounts, size, recv);
        begin();
        long[] sendAt = CommArgs.offsets(sendCounts);
        long[] recvAt = CommArgs.offsets(recvCounts);
        long elementSize = send.dtype().byteSize();
        call(nccl_h.ncclGroupStart(), "ncclGroupStart");
        for (int p = 0; p < size; p++) {
            call(nccl_h.ncclSend(at(send, sendAt[p] * elementSize), sendCounts[p], type(send), p, comm, stream), "ncclSend");
            call(nccl_h.ncclRecv(at(recv, recvAt[p] * elementSize), recvCounts[p], type(recv), p, comm, stream), "ncclRecv");
        }
        call(nccl_h.ncclGroupEnd(), "ncclGroupEnd");
        end("allToAllV");
    }

    @Override
    public void broadcast(Tensor data, int root) {
        checkTensor("data", data);
        CommArgs.checkRank("root", root, size);
        begin();
        call(nccl_h.ncclBroadcast(data.data(), data.data(), data.numel(), type(data), root, comm, stream), "ncclBroadcast");
        end("broadcast");
    }

    @Override
    public void send(Tensor data, int peer) {
        checkTensor("data", data);
        CommArgs.checkRank("peer", peer, size);
        begin();
        call(nccl_h.ncclSend(data.data(), data.numel(), type(data), peer, comm, stream), "ncclSend");
        end("send to rank " + peer);
    }

    @Override
    public void recv(Tensor data, int peer) {
        checkTensor("data", data);
        CommArgs.checkRank("peer", peer, size);
        begin();
        call(nccl_h.ncclRecv(data.data(), data.numel(), type(data), peer, comm, stream), "ncclRecv");
        end("recv from rank " + peer);
    }

    /** An all-reduce of a token that the host waits for: every rank has arrived when it returns. */
    @Override
    public void barrier() {
        allReduce(token);
        awaitAll("barrier");
    }

    /** ncclCommSplit is blocking: a barrier with the timeout first, so that it cannot hang. */
    @Override
    public Communicator split(int color, int key) {
        if (color < 0) {
            throw new IllegalArgumentException("color: must be >= 0, got " + color);
        }
        barrier();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(panamoe_h.C_POINTER);
            CudaRuntime.setDevice(device.index());
            call(nccl_h.ncclCommSplit(comm, color, key, out, MemorySegment.NULL), "ncclCommSplit");
            MemorySegment sub = out.get(panamoe_h.C_POINTER, 0);
            MemorySegment n = scratch.allocate(JAVA_INT);
            call(nccl_h.ncclCommCount(sub, n), "ncclCommCount");
            MemorySegment r = scratch.allocate(JAVA_INT);
            call(nccl_h.ncclCommUserRank(sub, r), "ncclCommUserRank");
            return new NcclCommunicator(sub, backend, r.get(JAVA_INT, 0), n.get(JAVA_INT, 0), timeout);
        }
    }

    /** ncclCommAbort: this rank's pending and later calls fail; the other ranks' NCCL calls then fail or time out. */
    @Override
    public void abort(Throwable cause) {
        breakWith("rank " + rank + " aborted: " + cause);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            if (brokenBy == null) {
                awaitAll("close");
            }
        } finally {
            closed = true;
            watchdog.interrupt();
            joinWatchdog();
        }
        if (brokenBy == null) {
            call(nccl_h.ncclCommDestroy(comm), "ncclCommDestroy");
        }
        for (Pending p; (p = pending.poll()) != null; ) {
            CudaRuntime.eventDestroy(p.done());
        }
        CudaRuntime.streamDestroy(stream);
        scope.close();
        arena.close();
    }

    @Override
    public String toString() {
        return "nccl rank " + rank + " of " + size + " on " + device;
    }

    // ---- plumbing ----

    private void checkTensor(String arg, Tensor t) {
        CommArgs.checkTensor(arg, t, false);
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(arg + ": this NCCL communicator works on " + device + ", got " + t.describe());
        }
    }

    /**
     * Checks the handle, makes the device current, and makes this communicator's stream wait,
     * on the device, for the work queued so far on this device's backend stream.
     */
    private void begin() {
        if (closed) {
            throw new IllegalStateException("communicator: " + this + " is closed");
        }
        if (brokenBy != null) {
            throw new CommunicatorException("communicator " + this + " is unusable: " + brokenBy);
        }
        CudaRuntime.setDevice(device.index());
        MemorySegment ready = CudaRuntime.eventCreateForOrdering();
        try {
            CudaRuntime.eventRecord(ready, backend.stream());
            CudaRuntime.streamWaitEvent(stream, ready);
        } finally {
            CudaRuntime.eventDestroy(ready); // released once the device has passed it
        }
    }

    /** Makes the backend stream wait for the operation just queued, and hands it to the watchdog. */
    private void end(String op) {
        MemorySegment done = CudaRuntime.eventCreateForOrdering();
        CudaRuntime.eventRecord(done, stream);
        CudaRuntime.streamWaitEvent(backend.stream(), done);
        backend.hostSyncs().enqueued();
        pending.add(new Pending(op, done, System.nanoTime() + timeout.toNanos()));
        LockSupport.unpark(watchdog);
    }

    /** The watchdog's loop: retires finished operations, and aborts on an asynchronous error or a deadline. */
    private void watch() {
        while (!closed) {
            Pending head = pending.peek();
            if (head == null) {
                LockSupport.park(this);
                continue;
            }
            try {
                if (CudaRuntime.eventDone(head.done())) {
                    pending.remove(head);
                    CudaRuntime.eventDestroy(head.done());
                    continue;
                }
                String problem = asyncProblem(head);
                if (problem != null) {
                    breakWith(problem);
                    return;
                }
            } catch (RuntimeException e) {
                breakWith(head.op() + ": the watchdog failed: " + e.getMessage());
                return;
            }
            LockSupport.parkNanos(this, WATCH_PAUSE_NANOS);
        }
    }

    /** NCCL's asynchronous error, or the deadline passed; null while all is well. */
    private String asyncProblem(Pending p) {
        call(nccl_h.ncclCommGetAsyncError(comm, asyncError), "ncclCommGetAsyncError");
        int error = asyncError.get(JAVA_INT, 0);
        if (error != nccl_h.ncclSuccess && error != nccl_h.ncclInProgress) {
            return p.op() + ": " + describe(error, comm);
        }
        if (System.nanoTime() >= p.deadline()) {
            return p.op() + " on NCCL rank " + rank + " timed out after " + timeout.toMillis()
                    + " ms: another rank did not arrive or has died";
        }
        return null;
    }

    /**
     * The host waits for every queued operation (a host synchronisation, counted by the backend):
     * until the watchdog has retired them, or has aborted the communicator, whose reason it throws.
     */
    private void awaitAll(String why) {
        while (!pending.isEmpty() && brokenBy == null) {
            LockSupport.parkNanos(WATCH_PAUSE_NANOS);
        }
        backend.hostSyncs().blocked("nccl " + why);
        if (brokenBy != null) {
            throw new CommunicatorException(brokenBy + " (NCCL communicator aborted)");
        }
    }

    private void joinWatchdog() {
        try {
            watchdog.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The first reason wins; ncclCommAbort runs once. */
    private synchronized void breakWith(String why) {
        if (brokenBy == null) {
            brokenBy = why;
            nccl_h.ncclCommAbort(comm);
        }
    }

    private void call(int result, String function) {
        check(result, function, comm);
    }

    private static void check(int result, String function, MemorySegment comm) {
        if (result != nccl_h.ncclSuccess) {
            throw new CommunicatorException(function + " failed: " + describe(result, comm));
        }
    }

    /** "unhandled cuda error (...): Cuda failure 'CUDA driver version is insufficient ...'" */
    private static String describe(int result, MemorySegment comm) {
        String text = nccl_h.ncclGetErrorString(result).reinterpret(1024).getString(0);
        MemorySegment last = nccl_h.ncclGetLastError(comm);
        String detail = last.equals(MemorySegment.NULL) ? "" : last.reinterpret(4096).getString(0);
        return text + (detail.isEmpty() ? "" : ": " + detail) + " (ncclResult " + result + ")";
    }

    private static int type(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> nccl_h.ncclFloat32;
            case BF16 -> nccl_h.ncclBfloat16;
            default -> nccl_h.ncclInt32;
        };
    }

    /** The device address byteOffset bytes into t (device memory cannot be sliced as host memory). */
    private static MemorySegment at(Tensor t, long byteOffset) {
        return MemorySegment.ofAddress(t.data().address() + byteOffset);
    }

    /** Where pip puts wheels: virtualenv, user site, pyenv, system and conda site-packages, PYTHONPATH. */
    private static List<Path> wheelFolders() {
        List<Path> roots = new ArrayList<>();
        String home = System.getProperty("user.home");
        String venv = System.getenv("VIRTUAL_ENV");
        if (venv != null) {
            roots.add(Path.of(venv, "lib"));
        }
        roots.add(Path.of(home, ".local", "lib"));
        roots.add(Path.of("/usr/local/lib"));
        roots.add(Path.of("/usr/lib"));
        roots.add(Path.of("/opt/conda/lib"));
        List<Path> folders = new ArrayList<>();
        for (String entry : System.getenv().getOrDefault("PYTHONPATH", "").split(":")) {
            if (!entry.isBlank()) {
                folders.add(Path.of(entry));
            }
        }
        try (Stream<Path> pyenv = Files.isDirectory(Path.of(home, ".pyenv", "versions")) ? Files.list(Path.of(home, ".pyenv", "versions")) : Stream.empty()) {
            pyenv.forEach(v -> roots.add(v.resolve("lib")));
        } catch (IOException e) {
            // an unreadable pyenv folder is one place fewer to look
        }
        for (Path root : roots) {
            try (Stream<Path> pythons = Files.isDirectory(root) ? Files.list(root) : Stream.empty()) {
                pythons.filter(p -> p.getFileName().toString().startsWith("python3")).sorted().forEach(p -> {
                    folders.add(p.resolve("site-packages"));
                    folders.add(p.resolve("dist-packages"));
                });
            } catch (IOException e) {
                // as above
            }
        }
        return folders;
    }
}
