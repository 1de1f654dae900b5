package dev.panamoe.runtime.comm;

import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import java.time.Duration;
import java.util.ArrayDeque;

/**
 * The group of a single device: one rank, whose collectives have nothing to exchange. A sum over
 * one rank is its own value and an all-to-all sends everything to itself, so reductions and
 * broadcasts leave the data as it is and gathers and all-to-alls copy in to out. A message the
 * rank sends itself is buffered until it receives it, in order (as MPI's buffered self-send).
 * Arguments are checked as by the other backends.
 */
public final class OneRankCommunicator implements Communicator {
    /** A message rank 0 sent itself: its dtype, element count and values (floats, or ints for i32). */
    private record Message(DType dtype, long length, Object values) {
    }

    /** Sent to itself and not yet received, in order. */
    private final ArrayDeque<Message> pending = new ArrayDeque<>();

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public String backendName() {
        return "one rank";
    }

    /** Nothing waits: every call completes at once. */
    @Override
    public Duration timeout() {
        return Duration.ZERO;
    }

    @Override
    public void allReduce(Tensor data) {
        CommArgs.checkTensor("data", data, false);
        CommArgs.checkSummable("data", data);
    }

    @Override
    public void reduceScatter(Tensor in, Tensor out) {
        CommArgs.checkSummable("in", in);
        copy(in, out, "in", in);
    }

    @Override
    public void allGather(Tensor in, Tensor out) {
        copy(in, out, "out", out);
    }

    /** out = in, both of one rank's block; whole names the argument that holds the blocks of all ranks. */
    private static void copy(Tensor in, Tensor out, String wholeArg, Tensor whole) {
        CommArgs.checkTensor("in", in, false);
        CommArgs.checkTensor("out", out, false);
        CommArgs.checkSameDtype("out", out, in);
        CommArgs.checkBlocks(wholeArg, whole, whole == in ? out : in, 1);
        flat(out, in.numel()).copyFrom(flat(in, in.numel()));
    }

    @Override
    public void allToAllV(Tensor send, int[] sendCounts, Tensor recv, int[] recvCounts) {
        CommArgs.checkTensor("send", send, false);
        CommArgs.checkTensor("recv", recv, false);
        CommArgs.checkSameDtype("recv", recv, send);
        long n = CommArgs.checkCounts("sendCounts", sendCounts, 1, send);
        CommArgs.checkCounts("recvCounts", recvCounts, 1, recv);
        if (recvCounts[0] != n) {
            throw new IllegalArgumentException("recvCounts[0]: rank 0 sends itself " + n + " elements, got " + recvCounts[0]);
        }
        if (n > 0) {
            flat(recv, n).copyFrom(flat(send, n));
        }
    }

    @Override
    public void broadcast(Tensor data, int root) {
        CommArgs.checkTensor("data", data, false);
        CommArgs.checkRank("root", root, 1);
    }

    @Override
    public void send(Tensor data, int peer) {
        CommArgs.checkTensor("data", data, false);
        CommArgs.checkRank("peer", peer, 1);
        pending.add(new Message(data.dtype(), data.numel(),
                data.dtype() == DType.I32 ? data.toIntArray() : data.toFloatArray()));
    }

    @Override
    public void recv(Tensor data, int peer) {
        CommArgs.checkTensor("data", data, false);
        CommArgs.checkRank("peer", peer, 1);
        Message message = pending.poll();
        if (message == null) {
            throw new IllegalStateException("recv: rank 0 waits for a message from itself that it has not sent");
        }
        if (message.length() != data.numel() || message.dtype() != data.dtype()) {
            throw new IllegalArgumentException("data: the message rank 0 sent itself holds " + message.length() + " "
                    + message.dtype() + " elements, got " + data.describe());
        }
        // bf16 travels as its floats: each is a bf16 value, so copyFrom's rounding gives it back exactly
        if (message.values() instanceof float[] f) {
            data.copyFrom(f);
        } else {
            data.copyFrom((int[]) message.values());
        }
    }

    @Override
    public void barrier() {
    }

    @Override
    public Communicator split(int color, int key) {
        return new OneRankCommunicator();
    }

    /** Nothing is pending and no other rank waits: there is no one to tell. */
    @Override
    public void abort(Throwable cause) {
    }

    @Override
    public void close() {
    }

    /** The first n elements of t as a flat view. */
    private static Tensor flat(Tensor t, long n) {
        return t.reshape(Math.toIntExact(t.numel())).slice(0, Math.toIntExact(n));
    }
}
