package dev.panamoe.runtime.comm;

import dev.panamoe.ops.Tensor;
import java.time.Duration;

/**
 * A group of ranks that exchange tensors: the one interface the distributed runtime codes
 * against, implemented in-JVM (ranks are threads sharing memory), over Open MPI (one process
 * per rank) and over NCCL (GPU tensors).
 *
 * <p>Semantics shared by every implementation:
 * <ul>
 *   <li>Collectives are called by every rank of the group in the same order (as in MPI).
 *   <li>Counts and offsets are in elements of the tensor's dtype; F32 and I32 tensors are
 *       supported everywhere, sums are element-wise; BF16 tensors (mixed precision's activation
 *       rows) are moved by every call but summed by none (allReduce and reduceScatter refuse them).
 *   <li>Reductions are deterministic: every rank gets bitwise the same result, and the
 *       in-JVM backend adds the contributions in rank order 0..size-1.
 *   <li>Every call waits at most {@link #timeout()}; a call that cannot complete, or a group in
 *       which some rank has failed ({@link #abort}), throws {@link CommunicatorException}
 *       naming the failed rank and its cause — never hangs.
 * </ul>
 * A communicator is used by one thread (its rank's) at a time.
 */
public interface Communicator extends AutoCloseable {

    /** This rank's index in the group, in [0, size). */
    int rank();

    /** Number of ranks in the group. */
    int size();

    /** "in-jvm", "mpi" or "nccl". */
    String backendName();

    /** The longest any call waits before it throws. */
    Duration timeout();

    /** Element-wise sum over the group, in place: every rank ends with the same sum. */
    void allReduce(Tensor data);

    /**
     * Sums in (size * n elements) over the group and leaves block {@code rank} of the sum
     * (n elements) in out.
     */
    void reduceScatter(Tensor in, Tensor out);

    /** Concatenates every rank's in (n elements each) in rank order into out (size * n). */
    void allGather(Tensor in, Tensor out);

    /**
     * All-to-all with per-peer counts: rank r sends send[sum(sendCounts[0..p)) ...+sendCounts[p]) to
     * peer p and receives recvCounts[p] elements from peer p, stored in peer order in recv.
     * sendCounts[p] on rank r must equal recvCounts[r] on rank p (checked where the backend can).
     */
    void allToAllV(Tensor send, int[] sendCounts, Tensor recv, int[] recvCounts);

    /** Copies root's data into every rank's data. */
    void broadcast(Tensor data, int root);

    /** Sends all of data to peer (blocking until the peer has it or it is buffered). */
    void send(Tensor data, int peer);

    /** Receives exactly data.numel() elements from peer into data. */
    void recv(Tensor data, int peer);

    void barrier();

    /**
     * A sub-group of the ranks that pass the same color, ordered by key (then by rank), as
     * MPI_Comm_split. Collective over this group; every rank gets its own sub-communicator.
     */
    Communicator split(int color, int key);

    /**
     * Marks this rank as failed with cause: every rank's pending and future calls on this group
     * (and on the groups split from the same world) throw a CommunicatorException that names
     * this rank and the cause. Safe to call from any thread; does not block.
     */
    void abort(Throwable cause);

    /** Frees this rank's handle of the group (not collective). */
    @Override
    void close();
}
