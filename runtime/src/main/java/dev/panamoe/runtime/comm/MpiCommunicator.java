package dev.panamoe.runtime.comm;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.panamoe.bindings.NativeLibraries;
import dev.panamoe.bindings.mpi_h;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.IntStream;

/**
 * A communicator over Open MPI (libmpi.so.40, bound through FFM): one process per rank, started
 * by mpirun. Every operation is MPI's nonblocking form (MPI_Iallreduce, MPI_Ialltoallv, ...)
 * completed by polling MPI_Test: it spins briefly (short collectives finish as fast as MPI's
 * blocking calls), then sleeps with a growing pause, and gives up at the deadline. A blocked MPI
 * call cannot be cancelled, so a timed-out communicator refuses every later call and the job has
 * to end: {@link #abort} prints the cause once and calls MPI_Abort, which makes mpirun stop every
 * rank. Errors come back as return codes (MPI_ERRORS_RETURN) and become exceptions carrying
 * MPI_Error_string.
 *
 * <p>A timed-out call names the ranks that did not arrive, as far as MPI lets one know: MPI cannot
 * say which ranks have entered a collective, so at its deadline a rank holds a roll call (a
 * point-to-point message on its own tag to every other rank of the communicator, carrying the
 * number of its call there) and waits a grace period ({@link #rollCallGrace}, one more timeout)
 * for theirs. The ranks stuck in the same call time out too and answer; a rank that is stopped,
 * dead or waiting elsewhere does not, and is named.
 *
 * <p>Sums are MPI_SUM on MPI_FLOAT/MPI_INT: identical on every rank, but added in the order of
 * Open MPI's algorithm, not in rank order.
 */
public final class MpiCommunicator implements Communicator {
    /** Spinning on MPI_Test this long costs little and keeps short collectives at MPI's own speed. */
    private static final long SPIN_NANOS = 200_000;
    private static final long MAX_PAUSE_NANOS = 1_000_000;
    private static final int TAG = 0;
    private static final int ROLL_CALL_TAG = 1;
    private static final AtomicBoolean ABORTING = new AtomicBoolean();
    private static boolean initialized;

    private final MemorySegment comm;
    private final boolean isWorld;
    private final int rank;
    private final int size;
    private final int worldRank;
    /** The world rank of each rank of this communicator. */
    private int[] worldRanks;
    private final Duration timeout;
    /** Calls made on this communicator: a roll call tells which call each rank is stuck in. */
    private int calls;
    /** MPI_Request, completion flag and MPI_Status of the call in flight (a communicator has one at a time). */
    private final Arena arena = Arena.ofShared();
    private final MemorySegment request = arena.allocate(mpi_h.MPI_HANDLE);
    private final MemorySegment flag = arena.allocate(JAVA_INT);
    private final MemorySegment status = arena.allocate(mpi_h.MPI_STATUS_SIZE, 8);
    private String brokenBy;
    private boolean closed;

    private MpiCommunicator(MemorySegment comm, boolean isWorld, Duration timeout) {
        this.comm = comm;
        this.isWorld = isWorld;
        this.timeout = timeout;
        this.rank = query(comm, true);
        this.size = query(comm, false);
        this.worldRank = query(mpi_h.MPI_COMM_WORLD(), true);
        this.worldRanks = isWorld ? IntStream.range(0, size).toArray() : null;
    }

    /** True when this process was started by Open MPI's mpirun (it sets OMPI_COMM_WORLD_SIZE). */
    public static boolean underMpirun() {
        return System.getenv("OMPI_COMM_WORLD_SIZE") != null;
    }

    /**
     * Initialises MPI (once per process, MPI_THREAD_MULTIPLE requested so that {@link #abort}
     * may come from any thread) and returns this process's rank of MPI_COMM_WORLD. Closing it
     * finalises MPI.
     */
    public static synchronized MpiCommunicator world(Duration timeout) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout: must be positive, got " + timeout);
        }
        NativeLibraries.mpi();
        if (!initialized) {
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment provided = scratch.allocate(JAVA_INT);
                check(mpi_h.MPI_Init_thread(MemorySegment.NULL, MemorySegment.NULL, mpi_h.MPI_THREAD_MULTIPLE, provided),
                        "MPI_Init_thread", -1);
                if (provided.get(JAVA_INT, 0) < mpi_h.MPI_THREAD_SERIALIZED) {
                    throw new CommunicatorException("MPI_Init_thread: Open MPI provides thread level "
                            + provided.get(JAVA_INT, 0) + ", PanaMoE needs MPI_THREAD_SERIALIZED (2) or more");
                }
            }
            initialized = true;
        }
        check(mpi_h.MPI_Comm_set_errhandler(mpi_h.MPI_COMM_WORLD(), mpi_h.MPI_ERRORS_RETURN()), "MPI_Comm_set_errhandler", -1);
        return new MpiCommunicator(mpi_h.MPI_COMM_WORLD(), true, timeout);
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
        return "mpi";
    }

    @Override
    public Duration timeout() {
        return timeout;
    }

    @Override
    public void allReduce(Tensor data) {
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkSummable("data", data);
        long deadline = begin();
        call(mpi_h.MPI_Iallreduce(mpi_h.MPI_IN_PLACE(), data.data(), count("data", data), type(data), mpi_h.MPI_SUM(), comm,
                request), "MPI_Iallreduce");
        await("allReduce", deadline);
    }

    @Override
    public void reduceScatter(Tensor in, Tensor out) {
        CommArgs.checkTensor("in", in, true);
        CommArgs.checkSummable("in", in);
        CommArgs.checkTensor("out", out, true);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks("in", in, out, size);
        long deadline = begin();
        call(mpi_h.MPI_Ireduce_scatter_block(in.data(), out.data(), count("out", out), type(in), mpi_h.MPI_SUM(), comm,
                request), "MPI_Ireduce_scatter_block");
        await("reduceScatter", deadline);
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        CommArgs.checkTensor("in", in, true);
        CommArgs.checkTensor("out", out, true);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks("out", out, in, size);
        count("out", out);
        long deadline = begin();
        int n = count("in", in);
        call(mpi_h.MPI_Iallgather(in.data(), n, type(in), out.data(), n, type(out), comm, request), "MPI_Iallgather");
        await("allGather", deadline);
    }

    /**
     * Exchanges the counts first (one MPI_Ialltoall of an int per peer) so that counts that
     * disagree between ranks fail with a message on the rank that sees it, instead of a
     * truncated or short message.
     */
    @Override
    public void allToAllV(Tensor send, int[] sendCounts, Tensor recv, int[] recvCounts) {
        CommArgs.checkTensor("send", send, true);
        CommArgs.checkTensor("recv", recv, true);
        CommArgs.checkSameDtype("recv", recv, send);
        count("send", send);
        count("recv", recv);
        CommArgs.checkCounts("sendCounts", sendCounts, size, send);
        CommArgs.checkCounts("recvCounts", recvCounts, size, recv);
        long deadline = begin();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment sc = scratch.allocateFrom(JAVA_INT, sendCounts);
            MemorySegment rc = scratch.allocateFrom(JAVA_INT, recvCounts);
            MemorySegment announced = scratch.allocate(JAVA_INT, size);
            call(mpi_h.MPI_Ialltoall(sc, 1, mpi_h.MPI_INT(), announced, 1, mpi_h.MPI_INT(), comm, request), "MPI_Ialltoall");
            await("allToAllV (counts)", deadline);
            for (int p = 0; p < size; p++) {
                int sent = announced.getAtIndex(JAVA_INT, p);
                if (sent != recvCounts[p]) {
                    throw new IllegalArgumentException("recvCounts[" + p + "]: rank " + rank + " expects " + recvCounts[p]
                            + " elements from rank " + p + ", but rank " + p + " sends " + sent + " (its sendCounts[" + rank + "])");
                }
            }
            MemorySegment sd = scratch.allocateFrom(JAVA_INT, displacements(sendCounts));
            MemorySegment rd = scratch.allocateFrom(JAVA_INT, displacements(recvCounts));
            call(mpi_h.MPI_Ialltoallv(send.data(), sc, sd, type(send), recv.data(), rc, rd, type(recv), comm, request),
                    "MPI_Ialltoallv");
            await("allToAllV", deadline);
        }
    }

    @Override
    public void broadcast(Tensor data, int root) {
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkRank("root", root, size);
        long deadline = begin();
        call(mpi_h.MPI_Ibcast(data.data(), count("data", data), type(data), root, comm, request), "MPI_Ibcast");
        await("broadcast", deadline);
    }

    @Override
    public void send(Tensor data, int peer) {
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkRank("peer", peer, size);
        long deadline = begin();
        call(mpi_h.MPI_Isend(data.data(), count("data", data), type(data), peer, TAG, comm, request), "MPI_Isend");
        await("send to rank " + peer, deadline);
    }

    @Override
    public void recv(Tensor data, int peer) {
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkRank("peer", peer, size);
        long deadline = begin();
        int n = count("data", data);
        call(mpi_h.MPI_Irecv(data.data(), n, type(data), peer, TAG, comm, request), "MPI_Irecv");
        await("recv from rank " + peer, deadline);
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment received = scratch.allocate(JAVA_INT);
            call(mpi_h.MPI_Get_count(status, type(data), received), "MPI_Get_count");
            if (received.get(JAVA_INT, 0) != n) {
                throw new IllegalArgumentException("data: rank " + peer + " sent " + received.get(JAVA_INT, 0) + " "
                        + data.dtype() + " elements but rank " + rank + " receives into " + data.describe());
            }
        }
    }

    @Override
    public void barrier() {
        long deadline = begin();
        call(mpi_h.MPI_Ibarrier(comm, request), "MPI_Ibarrier");
        await("barrier", deadline);
    }

    /** MPI_Comm_split has no nonblocking form: a barrier with the timeout first, so that it cannot hang. */
    @Override
    public Communicator split(int color, int key) {
        if (color < 0) {
            throw new IllegalArgumentException("color: must be >= 0, got " + color);
        }
        barrier();
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment newComm = scratch.allocate(mpi_h.MPI_HANDLE);
            call(mpi_h.MPI_Comm_split(comm, color, key, newComm), "MPI_Comm_split");
            MemorySegment handle = newComm.get(mpi_h.MPI_HANDLE, 0);
            call(mpi_h.MPI_Comm_set_errhandler(handle, mpi_h.MPI_ERRORS_RETURN()), "MPI_Comm_set_errhandler");
            MpiCommunicator split = new MpiCommunicator(handle, false, timeout);
            split.worldRanks = split.gatherWorldRanks();
            return split;
        }
    }

    /**
     * Prints "MPI world of N ranks: rank R failed: cause" and the stack trace once, then
     * MPI_Abort: mpirun ends every rank of the job (this call does not return).
     */
    @Override
    public void abort(Throwable cause) {
        if (ABORTING.compareAndSet(false, true)) {
            int worldSize = query(mpi_h.MPI_COMM_WORLD(), false);
            System.err.println("MPI world of " + worldSize + " ranks: rank " + worldRank + " failed: " + cause);
            cause.printStackTrace();
            System.err.flush();
            mpi_h.MPI_Abort(mpi_h.MPI_COMM_WORLD(), 1);
        }
        // Another thread is already aborting the job; wait for MPI to end this process.
        LockSupport.parkNanos(Long.MAX_VALUE);
    }

    /**
     * Frees a split communicator; on the world, a barrier (with the timeout, so a dead rank cannot
     * hang it) and then MPI_Finalize. After a timeout, only marks the handle closed: MPI has a call
     * in flight, and the job must be aborted instead.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        if (brokenBy == null) {
            if (isWorld) {
                barrier();
                call(mpi_h.MPI_Finalize(), "MPI_Finalize");
            } else {
                try (Arena scratch = Arena.ofConfined()) {
                    call(mpi_h.MPI_Comm_free(scratch.allocateFrom(mpi_h.MPI_HANDLE, comm)), "MPI_Comm_free");
                }
            }
        }
        closed = true;
        arena.close();
    }

    @Override
    public String toString() {
        return "mpi rank " + rank + " of " + size + (isWorld ? " (world)" : " (world rank " + worldRank + ")");
    }

    /** Every rank's world rank, gathered over this communicator (for messages that name ranks). */
    private int[] gatherWorldRanks() {
        long deadline = begin();
        MemorySegment mine = arena.allocateFrom(JAVA_INT, worldRank);
        MemorySegment all = arena.allocate(JAVA_INT, size);
        call(mpi_h.MPI_Iallgather(mine, 1, mpi_h.MPI_INT(), all, 1, mpi_h.MPI_INT(), comm, request), "MPI_Iallgather");
        await("allGather (world ranks)", deadline);
        return all.toArray(JAVA_INT);
    }

    private long begin() {
        if (closed) {
            throw new IllegalStateException("communicator: " + this + " is closed");
        }
        if (brokenBy != null) {
            throw new CommunicatorException("communicator " + this + " is unusable: " + brokenBy);
        }
        calls++;
        return System.nanoTime() + timeout.toNanos();
    }

    /** Polls the request in flight until it completes or the deadline passes (see the class comment). */
    private void await(String op, long deadline) {
        long spinUntil = System.nanoTime() + SPIN_NANOS;
        long pause = 10_000;
        while (true) {
            call(mpi_h.MPI_Test(request, flag, status), "MPI_Test in " + op);
            if (flag.get(JAVA_INT, 0) != 0) {
                return;
            }
            long now = System.nanoTime();
            if (now >= deadline) {
                brokenBy = op + " on MPI rank " + worldRank + " timed out after " + timeout.toMillis() + " ms: "
                        + rollCall() + " (a pending MPI call cannot be cancelled; abort the job)";
                throw new CommunicatorException(brokenBy);
            }
            if (now < spinUntil) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(pause);
                pause = Math.min(2 * pause, MAX_PAUSE_NANOS);
            }
        }
    }

    /**
     * How long a roll call waits for the other ranks' answers: a rank answers only at its own
     * deadline, so one that entered the call up to a whole timeout after this rank (it was
     * waiting, not absent) still answers within it.
     */
    static Duration rollCallGrace(Duration timeout) {
        return timeout;
    }

    /**
     * Sends this rank's call number to every other rank of the communicator and collects theirs
     * for {@link #rollCallGrace}; says which world ranks did not answer and which are stuck in
     * another call. Nothing is freed: the job is aborted after a timeout.
     */
    private String rollCall() {
        if (worldRanks == null) {
            return "another rank did not arrive or has died";
        }
        MemorySegment mine = arena.allocateFrom(JAVA_INT, calls);
        MemorySegment theirs = arena.allocate(JAVA_INT, size);
        MemorySegment requests = arena.allocate(mpi_h.MPI_HANDLE, 2L * size);
        MemorySegment done = arena.allocate(JAVA_INT);
        MemorySegment statuses = arena.allocate(mpi_h.MPI_STATUS_SIZE * size, 8);
        boolean[] answered = new boolean[size];
        answered[rank] = true;
        for (int p = 0; p < size; p++) {
            if (p != rank) {
                call(mpi_h.MPI_Isend(mine, 1, mpi_h.MPI_INT(), p, ROLL_CALL_TAG, comm, requests.asSlice(
                        mpi_h.MPI_HANDLE.byteSize() * (size + p), mpi_h.MPI_HANDLE.byteSize())), "MPI_Isend (roll call)");
                call(mpi_h.MPI_Irecv(theirs.asSlice(4L * p, 4), 1, mpi_h.MPI_INT(), p, ROLL_CALL_TAG, comm,
                        requests.asSlice(mpi_h.MPI_HANDLE.byteSize() * p, mpi_h.MPI_HANDLE.byteSize())),
                        "MPI_Irecv (roll call)");
            }
        }
        long until = System.nanoTime() + rollCallGrace(timeout).toNanos();
        int missing = size - 1;
        while (missing > 0 && System.nanoTime() < until) {
            for (int p = 0; p < size; p++) {
                if (!answered[p]) {
                    call(mpi_h.MPI_Test(requests.asSlice(mpi_h.MPI_HANDLE.byteSize() * p, mpi_h.MPI_HANDLE.byteSize()),
                            done, statuses.asSlice(mpi_h.MPI_STATUS_SIZE * p, mpi_h.MPI_STATUS_SIZE)), "MPI_Test (roll call)");
                    if (done.get(JAVA_INT, 0) != 0) {
                        answered[p] = true;
                        missing--;
                    }
                }
            }
            LockSupport.parkNanos(MAX_PAUSE_NANOS);
        }
        List<Integer> absent = new ArrayList<>();
        List<Integer> waiting = new ArrayList<>();
        StringBuilder elsewhere = new StringBuilder();
        for (int p = 0; p < size; p++) {
            if (!answered[p]) {
                absent.add(worldRanks[p]);
            } else if (p != rank && theirs.getAtIndex(JAVA_INT, p) == calls) {
                waiting.add(worldRanks[p]);
            } else if (p != rank) {
                elsewhere.append("; world rank ").append(worldRanks[p]).append(" is stuck in its call ")
                        .append(theirs.getAtIndex(JAVA_INT, p)).append(" on this communicator, this rank in its call ")
                        .append(calls);
            }
        }
        if (absent.isEmpty() && elsewhere.isEmpty()) {
            return "every rank of the communicator was waiting in it (world ranks " + waiting + " besides this one); "
                    + "MPI did not complete it";
        }
        String waitingToo = " (world ranks " + waiting + " were waiting in it too)";
        return absent.isEmpty() ? "every rank arrived, but not in the same call" + waitingToo + elsewhere
                : "world ranks " + absent + " did not arrive" + waitingToo + elsewhere;
    }

    private void call(int rc, String function) {
        check(rc, function, worldRank);
    }

    /** Throws a CommunicatorException with MPI_Error_string's text unless rc is MPI_SUCCESS. */
    static void check(int rc, String function, int worldRank) {
        if (rc == mpi_h.MPI_SUCCESS) {
            return;
        }
        String text;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment string = scratch.allocate(mpi_h.MPI_MAX_ERROR_STRING);
            MemorySegment length = scratch.allocate(JAVA_INT);
            text = mpi_h.MPI_Error_string(rc, string, length) == mpi_h.MPI_SUCCESS ? string.getString(0) : "unknown error";
        }
        throw new CommunicatorException(function + " failed" + (worldRank >= 0 ? " on MPI rank " + worldRank : "")
                + ": " + text + " (error code " + rc + ")");
    }

    private static int query(MemorySegment comm, boolean rank) {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(JAVA_INT);
            check(rank ? mpi_h.MPI_Comm_rank(comm, out) : mpi_h.MPI_Comm_size(comm, out),
                    rank ? "MPI_Comm_rank" : "MPI_Comm_size", -1);
            return out.get(JAVA_INT, 0);
        }
    }

    private static MemorySegment type(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> mpi_h.MPI_FLOAT();
            case BF16 -> mpi_h.MPI_UINT16_T(); // moved as its bits, never summed
            default -> mpi_h.MPI_INT();
        };
    }

    /** MPI counts are ints. */
    private static int count(String arg, Tensor t) {
        if (t.numel() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(arg + ": MPI counts are ints; " + t.describe() + " has more than "
                    + Integer.MAX_VALUE + " elements");
        }
        return (int) t.numel();
    }

    private static int[] displacements(int[] counts) {
        long[] offsets = CommArgs.offsets(counts);
        int[] displs = new int[offsets.length];
        for (int p = 0; p < offsets.length; p++) {
            displs[p] = Math.toIntExact(offsets[p]);
        }
        return displs;
    }
}
