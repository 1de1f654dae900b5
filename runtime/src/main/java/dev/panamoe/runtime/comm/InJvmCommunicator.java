package dev.panamoe.runtime.comm;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * One rank's handle of an in-JVM group. Every collective follows one pattern: deposit what this
 * rank contributes (its input memory, which the other threads read directly), read the others'
 * contributions and write only this rank's own outputs, then a closing rendezvous so that no rank
 * returns (and reuses its input) while another still reads it.
 *
 * <p>Sums are computed chunk-wise: rank r adds chunk r of every rank's input in rank order
 * 0..size-1, so each element is added in the same order whoever computes it, and every rank
 * copies the same bits. A small all-reduce skips the chunks: every rank adds all of it, in the
 * same order, which saves one rendezvous.
 */
final class InJvmCommunicator implements Communicator {
    /** A thread that never runs: memory it may access is memory every rank's thread may access. */
    private static final Thread STRANGER = Thread.ofPlatform().unstarted(() -> {});
    /** Up to this many elements, each rank sums the whole tensor instead of one chunk of it. */
    private static final long WHOLE_SUM_MAX = 8192;

    /** A rank's contribution: its input (readable by every rank's thread) with its dtype and element count. */
    private record Buffer(DType dtype, long numel, MemorySegment data) {}

    private record AllToAll(Buffer send, int[] sendCounts, int[] recvCounts) {}

    private record Broadcast(Buffer data, int root) {}

    private final InJvmGroup group;
    private final int rank;
    private final int worldRank;
    private MemorySegment staging = MemorySegment.NULL;
    private float[] sums = new float[0];
    private int[] sumsI32 = new int[0];
    private boolean closed;

    InJvmCommunicator(InJvmGroup group, int rank) {
        this.group = group;
        this.rank = rank;
        this.worldRank = group.worldRank(rank);
    }

    InJvmGroup group() {
        return group;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return group.size();
    }

    @Override
    public String backendName() {
        return "in-jvm";
    }

    @Override
    public Duration timeout() {
        return group.world().timeout();
    }

    @Override
    public void allReduce(Tensor data) {
        String op = "allReduce";
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkSummable("data", data);
        long deadline = begin();
        Buffer[] inputs = buffers(exchange(op, buffer(data), deadline));
        checkSameShape("data", inputs);
        if (data.numel() <= WHOLE_SUM_MAX) {
            // Small: every rank sums everything itself (the same bits), saving a rendezvous.
            MemorySegment all = sum(inputs, 0, data.numel());
            exchange(op, null, deadline); // every rank has read every input: now overwrite ours
            MemorySegment.copy(all, 0, data.data(), 0, all.byteSize());
            return;
        }
        MemorySegment mySum = sum(inputs, chunkStart(data.numel(), rank), chunkStart(data.numel(), rank + 1));
        Object[] chunks = exchange(op, mySum, deadline).values();
        long elementSize = data.dtype().byteSize();
        for (int q = 0; q < size(); q++) {
            MemorySegment chunk = (MemorySegment) chunks[q];
            MemorySegment.copy(chunk, 0, data.data(), chunkStart(data.numel(), q) * elementSize, chunk.byteSize());
        }
        exchange(op, null, deadline);
    }

    @Override
    public void reduceScatter(Tensor in, Tensor out) {
        String op = "reduceScatter";
        CommArgs.checkTensor("in", in, true);
        CommArgs.checkSummable("in", in);
        CommArgs.checkTensor("out", out, true);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks("in", in, out, size());
        long deadline = begin();
        Buffer[] inputs = buffers(exchange(op, buffer(in), deadline));
        checkSameShape("in", inputs);
        long n = out.numel();
        MemorySegment mySum = sum(inputs, rank * n, (rank + 1) * n);
        MemorySegment.copy(mySum, 0, out.data(), 0, mySum.byteSize());
        exchange(op, null, deadline);
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        String op = "allGather";
        CommArgs.checkTensor("in", in, true);
        CommArgs.checkTensor("out", out, true);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks("out", out, in, size());
        long deadline = begin();
        Buffer[] inputs = buffers(exchange(op, buffer(in), deadline));
        checkSameShape("in", inputs);
        for (int q = 0; q < size(); q++) {
            MemorySegment.copy(inputs[q].data(), 0, out.data(), q * in.byteSize(), in.byteSize());
        }
        exchange(op, null, deadline);
    }

    @Override
    public void allToAllV(Tensor send, int[] sendCounts, Tensor recv, int[] recvCounts) {
        String op = "allToAllV";
        CommArgs.checkTensor("send", send, true);
        CommArgs.checkTensor("recv", recv, true);
        CommArgs.checkSameDtype("recv", recv, send);
        CommArgs.checkCounts("sendCounts", sendCounts, size(), send);
        CommArgs.checkCounts("recvCounts", recvCounts, size(), recv);
        long deadline = begin();
        Object[] all = exchange(op, new AllToAll(buffer(send), sendCounts.clone(), recvCounts.clone()), deadline).values();
        checkCountsMatch(all);
        long elementSize = send.dtype().byteSize();
        long[] recvOffsets = CommArgs.offsets(recvCounts);
        for (int p = 0; p < size(); p++) {
            AllToAll peer = (AllToAll) all[p];
            long from = CommArgs.offsets(peer.sendCounts())[rank];
            MemorySegment.copy(peer.send().data(), from * elementSize, recv.data(), recvOffsets[p] * elementSize,
                    recvCounts[p] * elementSize);
        }
        exchange(op, null, deadline);
    }

    @Override
    public void broadcast(Tensor data, int root) {
        String op = "broadcast";
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkRank("root", root, size());
        long deadline = begin();
        Object[] all = exchange(op, new Broadcast(rank == root ? buffer(data) : new Buffer(data.dtype(), data.numel(), null), root),
                deadline).values();
        Buffer[] buffers = new Buffer[size()];
        for (int q = 0; q < size(); q++) {
            Broadcast b = (Broadcast) all[q];
            if (b.root() != root) {
                throw new IllegalArgumentException("root: rank " + q + " passes " + b.root() + " but rank " + rank + " passes " + root);
            }
            buffers[q] = b.data();
        }
        checkSameShape("data", buffers);
        if (rank != root) {
            MemorySegment.copy(buffers[root].data(), 0, data.data(), 0, data.byteSize());
        }
        exchange(op, null, deadline);
    }

    @Override
    public void send(Tensor data, int peer) {
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkRank("peer", peer, size());
        begin();
        // A copy, so that send returns at once (a buffered send) and the caller may reuse data.
        MemorySegment copy = MemorySegment.ofArray(new long[(int) ((data.byteSize() + 7) / 8)]).asSlice(0, data.byteSize());
        MemorySegment.copy(data.data(), 0, copy, 0, data.byteSize());
        group.post(rank, peer, new InJvmGroup.Message(data.dtype(), data.numel(), copy));
    }

    @Override
    public void recv(Tensor data, int peer) {
        CommArgs.checkTensor("data", data, true);
        CommArgs.checkRank("peer", peer, size());
        InJvmGroup.Message m = group.take(peer, rank, begin());
        if (m.dtype() != data.dtype() || m.numel() != data.numel()) {
            throw new IllegalArgumentException("data: rank " + peer + " sent " + m.numel() + " " + m.dtype()
                    + " elements but rank " + rank + " receives into " + data.describe());
        }
        MemorySegment.copy(m.data(), 0, data.data(), 0, data.byteSize());
    }

    @Override
    public void barrier() {
        exchange("barrier", null, begin());
    }

    @Override
    public Communicator split(int color, int key) {
        if (color < 0) {
            throw new IllegalArgumentException("color: must be >= 0, got " + color);
        }
        InJvmGroup.Round round = exchange("split", new int[] {color, key}, begin());
        List<Integer> members = new ArrayList<>();
        for (int q = 0; q < size(); q++) {
            if (((int[]) round.values()[q])[0] == color) {
                members.add(q);
            }
        }
        members.sort(Comparator.comparingInt((Integer q) -> ((int[]) round.values()[q])[1]).thenComparingInt(q -> q));
        InJvmGroup sub = (InJvmGroup) round.shared().computeIfAbsent(color, c -> group.world().newGroup(
                group.name() + "/" + color, members.stream().mapToInt(group::worldRank).toArray()));
        return new InJvmCommunicator(sub, members.indexOf(rank));
    }

    @Override
    public void abort(Throwable cause) {
        group.world().abort(worldRank, cause);
    }

    @Override
    public void close() {
        closed = true;
    }

    @Override
    public String toString() {
        return "in-jvm rank " + rank + " of " + size() + " (group " + group.name() + ", world rank " + worldRank + ")";
    }

    /** Checks the handle and the world, and returns the call's deadline. */
    private long begin() {
        if (closed) {
            throw new IllegalStateException("communicator: " + this + " is closed");
        }
        return System.nanoTime() + timeout().toNanos();
    }

    private InJvmGroup.Round exchange(String op, Object value, long deadline) {
        return group.exchange(rank, op, value, deadline);
    }

    /**
     * t's memory as the other ranks' threads may read it: the tensor itself when its scope is
     * shared, else a copy in this rank's staging buffer (a confined scope's memory is only
     * accessible from its own thread).
     */
    private Buffer buffer(Tensor t) {
        MemorySegment data = t.data();
        if (!data.isAccessibleBy(STRANGER)) {
            if (staging.byteSize() < t.byteSize()) {
                staging = MemorySegment.ofArray(new long[(int) ((t.byteSize() + 7) / 8)]);
            }
            MemorySegment.copy(data, 0, staging, 0, t.byteSize());
            data = staging.asSlice(0, t.byteSize());
        }
        return new Buffer(t.dtype(), t.numel(), data);
    }

    private static Buffer[] buffers(InJvmGroup.Round round) {
        Buffer[] buffers = new Buffer[round.values().length];
        for (int q = 0; q < buffers.length; q++) {
            buffers[q] = (Buffer) round.values()[q];
        }
        return buffers;
    }

    /** Every rank passes the same dtype and element count as rank 0 (checked identically on every rank, so all throw). */
    private static void checkSameShape(String arg, Buffer[] buffers) {
        for (int q = 1; q < buffers.length; q++) {
            if (buffers[q].dtype() != buffers[0].dtype() || buffers[q].numel() != buffers[0].numel()) {
                throw new IllegalArgumentException(arg + ": rank " + q + " passes " + buffers[q].numel() + " "
                        + buffers[q].dtype() + " elements but rank 0 passes " + buffers[0].numel() + " " + buffers[0].dtype());
            }
        }
    }

    /** sendCounts[p] on rank q must equal recvCounts[q] on rank p, and dtypes must agree (checked the same on every rank). */
    private static void checkCountsMatch(Object[] all) {
        for (int q = 0; q < all.length; q++) {
            AllToAll from = (AllToAll) all[q];
            if (from.send().dtype() != ((AllToAll) all[0]).send().dtype()) {
                throw new IllegalArgumentException("send: rank " + q + " sends " + from.send().dtype()
                        + " but rank 0 sends " + ((AllToAll) all[0]).send().dtype());
            }
            for (int p = 0; p < all.length; p++) {
                int expected = ((AllToAll) all[p]).recvCounts()[q];
                if (from.sendCounts()[p] != expected) {
                    throw new IllegalArgumentException("recvCounts[" + q + "]: rank " + p + " expects " + expected
                            + " elements from rank " + q + ", but rank " + q + " sends " + from.sendCounts()[p]
                            + " (its sendCounts[" + p + "])");
                }
            }
        }
    }

    /** First element of rank q's chunk when n elements are split as evenly as possible over the group. */
    private long chunkStart(long n, int q) {
        return n * q / size();
    }

    /**
     * Elements [from, to) summed over every rank's input in rank order, in this rank's sum buffer
     * (reused: the closing rendezvous of each collective guarantees nobody still reads it).
     */
    private MemorySegment sum(Buffer[] inputs, long from, long to) {
        int n = Math.toIntExact(to - from);
        if (inputs[0].dtype() == DType.F32) {
            if (sums.length < n) {
                sums = new float[n];
            }
            float[] acc = sums;
            MemorySegment.copy(inputs[0].data(), JAVA_FLOAT, from * 4, acc, 0, n);
            for (int q = 1; q < inputs.length; q++) {
                MemorySegment in = inputs[q].data();
                for (int i = 0; i < n; i++) {
                    acc[i] += in.getAtIndex(JAVA_FLOAT, from + i);
                }
            }
            return MemorySegment.ofArray(acc).asSlice(0, 4L * n);
        }
        if (sumsI32.length < n) {
            sumsI32 = new int[n];
        }
        int[] acc = sumsI32;
        MemorySegment.copy(inputs[0].data(), JAVA_INT, from * 4, acc, 0, n);
        for (int q = 1; q < inputs.length; q++) {
            MemorySegment in = inputs[q].data();
            for (int i = 0; i < n; i++) {
                acc[i] += in.getAtIndex(JAVA_INT, from + i);
            }
        }
        return MemorySegment.ofArray(acc).asSlice(0, 4L * n);
    }
}
