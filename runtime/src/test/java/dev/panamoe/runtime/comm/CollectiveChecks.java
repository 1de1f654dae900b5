package dev.panamoe.runtime.comm;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Every operation of a Communicator on random data, checked on each rank against a plain-Java
 * reference. Every rank can compute every other rank's input (it is a function of the seed and
 * the rank), so the reference needs no communication. Run by every rank of a group: by the
 * in-JVM tests for several world sizes and by {@link MpiChecksMain} under mpirun.
 */
final class CollectiveChecks {
    private final Communicator comm;
    private final long seed;
    /** The backend promises sums in rank order (in-JVM): compare bitwise, else within a relative tolerance. */
    private final boolean rankOrderSums;
    private final TensorScope scope;

    CollectiveChecks(Communicator comm, long seed, boolean rankOrderSums, boolean confinedScope) {
        this.comm = comm;
        this.seed = seed;
        this.rankOrderSums = rankOrderSums;
        this.scope = confinedScope ? TensorScope.confined(CpuBackend.get()) : TensorScope.shared(CpuBackend.get());
    }

    /** Runs every check; returns how many element comparisons passed (so callers can see work was done). */
    long runAll() {
        try (scope) {
            long checked = 0;
            for (int n : new int[] {0, 1, 7, 1000, 10_007}) { // the last above the in-JVM whole-sum limit
                checked += allReduce(DType.F32, n, 1);
            }
            checked += allReduce(DType.I32, 13, 2);
            checked += allReduce(DType.I32, 9_001, 2);
            for (int n : new int[] {0, 3, 100}) {
                checked += reduceScatter(DType.F32, n, 3);
            }
            checked += reduceScatter(DType.I32, 5, 4);
            for (int n : new int[] {0, 1, 17}) {
                checked += allGather(DType.F32, n, 5);
            }
            checked += allGather(DType.I32, 4, 6);
            checked += allToAllV(DType.F32, 5, 7);
            checked += allToAllV(DType.I32, 3, 8);
            checked += allToAllV(DType.F32, 0, 9); // every count zero: empty tensors
            for (int root = 0; root < comm.size(); root++) {
                checked += broadcast(DType.F32, 9, root, 10);
            }
            checked += broadcast(DType.I32, 4, comm.size() - 1, 11);
            checked += sendRecvRing(DType.F32, 33, 12);
            checked += sendRecvRing(DType.I32, 0, 13);
            checked += allToAllV(DType.BF16, 6, 16); // bf16 is moved as it is, and never summed
            checked += allGather(DType.BF16, 3, 17);
            checked += broadcast(DType.BF16, 5, comm.size() - 1, 18);
            checked += sendRecvRing(DType.BF16, 7, 19);
            checked += refusesBf16Sums(20);
            comm.barrier();
            checked += split(true, 14);
            checked += split(false, 15);
            return checked;
        }
    }

    private long allReduce(DType dtype, int n, int salt) {
        Tensor data = input(dtype, n, comm.rank(), salt);
        comm.allReduce(data);
        return expectSum(data, n, 0, salt, "allReduce") + expectSameEverywhere(data);
    }

    private long reduceScatter(DType dtype, int n, int salt) {
        Tensor in = input(dtype, n * comm.size(), comm.rank(), salt);
        Tensor out = scope.allocate("out", dtype, n);
        comm.reduceScatter(in, out);
        return expectSum(out, n, (long) comm.rank() * n, salt, "reduceScatter");
    }

    private long allGather(DType dtype, int n, int salt) {
        Tensor in = input(dtype, n, comm.rank(), salt);
        Tensor out = scope.allocate("out", dtype, n * comm.size());
        comm.allGather(in, out);
        for (int q = 0; q < comm.size(); q++) {
            expectEqual(out, (long) q * n, values(dtype, n, q, salt), 0, n, "allGather block " + q);
        }
        return out.numel();
    }

    /** Ragged counts (zeros included): rank q sends counts[q][p] elements to rank p. */
    private long allToAllV(DType dtype, int maxCount, int salt) {
        int size = comm.size();
        int[][] counts = new int[size][size];
        SplittableRandom random = new SplittableRandom(seed * 1_000_003L + salt);
        for (int[] row : counts) {
            Arrays.setAll(row, p -> maxCount == 0 ? 0 : random.nextInt(maxCount + 1));
        }
        int me = comm.rank();
        int[] recvCounts = new int[size];
        Arrays.setAll(recvCounts, q -> counts[q][me]);
        int sendTotal = Arrays.stream(counts[me]).sum();
        int recvTotal = Arrays.stream(recvCounts).sum();
        Tensor send = input(dtype, sendTotal, me, salt);
        Tensor recv = scope.allocate("recv", dtype, recvTotal);
        comm.allToAllV(send, counts[me], recv, recvCounts);
        long at = 0;
        for (int q = 0; q < size; q++) {
            int from = Arrays.stream(counts[q], 0, me).sum();
            double[] sent = values(dtype, Arrays.stream(counts[q]).sum(), q, salt);
            expectEqual(recv, at, sent, from, recvCounts[q], "allToAllV from rank " + q);
            at += recvCounts[q];
        }
        return recvTotal;
    }

    /** allReduce and reduceScatter refuse bf16 on every rank before any communication, naming the argument. */
    private long refusesBf16Sums(int salt) {
        Tensor data = input(DType.BF16, comm.size(), comm.rank(), salt);
        Tensor out = scope.allocate("out", DType.BF16, 1);
        for (Runnable sum : new Runnable[] {() -> comm.allReduce(data), () -> comm.reduceScatter(data, out)}) {
            try {
                sum.run();
                throw new AssertionError("a bf16 sum was accepted on rank " + comm.rank());
            } catch (IllegalArgumentException e) {
                if (!e.getMessage().matches("(data|in): bf16 tensors are exchanged but not summed.*")) {
                    throw new AssertionError("unexpected message: " + e.getMessage(), e);
                }
            }
        }
        return 2;
    }

    private long broadcast(DType dtype, int n, int root, int salt) {
        Tensor data = input(dtype, n, comm.rank(), salt);
        comm.broadcast(data, root);
        expectEqual(data, 0, values(dtype, n, root, salt), 0, n, "broadcast from root " + root);
        return n;
    }

    /**
     * Each rank sends to the next and receives from the previous. Even ranks send first and odd
     * ranks receive first, so the ring completes even where a send waits for its receiver.
     */
    private long sendRecvRing(DType dtype, int n, int salt) {
        int size = comm.size();
        int next = (comm.rank() + 1) % size;
        int prev = (comm.rank() + size - 1) % size;
        Tensor out = input(dtype, n, comm.rank(), salt);
        Tensor in = scope.allocate("in", dtype, n);
        if (comm.rank() % 2 == 0 || size == 1) {
            comm.send(out, next);
            comm.recv(in, prev);
        } else {
            comm.recv(in, prev);
            comm.send(out, next);
        }
        expectEqual(in, 0, values(dtype, n, prev, salt), 0, n, "recv from rank " + prev);
        return n;
    }

    /**
     * Splits by parity with reversed keys (sub-rank order opposite to rank order), or into one
     * group with equal keys (rank order kept); checks the sub-group's ranks and sums within it.
     */
    private long split(boolean byParity, int salt) {
        int size = comm.size();
        int[] colors = new int[size];
        int[] keys = new int[size];
        for (int q = 0; q < size; q++) {
            colors[q] = byParity ? q % 2 : 0;
            keys[q] = byParity ? -q : 0;
        }
        int color = colors[comm.rank()];
        int key = keys[comm.rank()];
        Integer[] members = java.util.stream.IntStream.range(0, size).filter(q -> colors[q] == color).boxed()
                .sorted((a, b) -> keys[a] != keys[b] ? Integer.compare(keys[a], keys[b]) : Integer.compare(a, b))
                .toArray(Integer[]::new);
        try (Communicator sub = comm.split(color, key)) {
            if (sub.size() != members.length || members[sub.rank()] != comm.rank()) {
                throw new AssertionError("split(" + color + ", " + key + ") on rank " + comm.rank() + ": got rank "
                        + sub.rank() + " of " + sub.size() + ", expected members " + Arrays.toString(members));
            }
            int n = 11;
            Tensor data = input(DType.F32, n, comm.rank(), salt);
            sub.allReduce(data);
            double[] expected = new double[n];
            for (int i = 0; i < n; i++) {
                float acc = 0;
                for (int m = 0; m < members.length; m++) {
                    float v = (float) values(DType.F32, n, members[m], salt)[i];
                    acc = m == 0 ? v : acc + v;
                }
                expected[i] = acc;
            }
            expectClose(data, 0, expected, "allReduce in split(" + color + ", " + key + ")");
            return n;
        }
    }

    // ---- inputs and references ----

    /** Rank q's input of a check: random, small integers for I32 (so sums are exact and need no tolerance), bf16 values for BF16. */
    private double[] values(DType dtype, int n, int q, int salt) {
        SplittableRandom random = new SplittableRandom((seed * 1_000_003L + salt) * 4099 + q);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = switch (dtype) {
                case I32 -> random.nextInt(-1000, 1000);
                case BF16 -> Float.intBitsToFloat(Float.floatToRawIntBits((float) random.nextDouble(-1, 1)) & 0xffff0000);
                default -> (float) random.nextDouble(-1, 1);
            };
        }
        return v;
    }

    private Tensor input(DType dtype, int n, int q, int salt) {
        double[] v = values(dtype, n, q, salt);
        Tensor t = scope.allocate("in" + salt, dtype, n);
        for (int i = 0; i < n; i++) {
            if (dtype == DType.I32) {
                t.setInt(i, (int) v[i]);
            } else {
                t.setFloat(i, (float) v[i]);
            }
        }
        return t;
    }

    /** got[0..n) against the sum over ranks of element offset+i, added in rank order in the dtype. */
    private long expectSum(Tensor got, int n, long offset, int salt, String what) {
        int total = Math.toIntExact(offset + n);
        double[] expected = new double[n];
        for (int q = 0; q < comm.size(); q++) {
            double[] v = values(got.dtype(), total, q, salt);
            for (int i = 0; i < n; i++) {
                expected[i] = got.dtype() == DType.I32 ? expected[i] + v[(int) offset + i]
                        : (float) (q == 0 ? v[(int) offset + i] : (float) expected[i] + (float) v[(int) offset + i]);
            }
        }
        expectClose(got, 0, expected, what);
        return n;
    }

    private void expectClose(Tensor got, long at, double[] expected, String what) {
        if (got.dtype() == DType.I32 || rankOrderSums) {
            expectEqual(got, at, expected, 0, expected.length, what);
            return;
        }
        for (int i = 0; i < expected.length; i++) {
            double g = got.getFloat(at + i);
            if (Math.abs(g - expected[i]) > 1e-5 * Math.max(1, Math.abs(expected[i]))) {
                throw new AssertionError(what + " on rank " + comm.rank() + " of " + comm.size() + ": element " + i
                        + " is " + g + ", expected " + expected[i]);
            }
        }
    }

    private void expectEqual(Tensor got, long at, double[] expected, int from, int n, String what) {
        for (int i = 0; i < n; i++) {
            double g = got.dtype() == DType.I32 ? got.getInt(at + i) : got.getFloat(at + i);
            if (g != (got.dtype() == DType.I32 ? expected[from + i] : (float) expected[from + i])) {
                throw new AssertionError(what + " on rank " + comm.rank() + " of " + comm.size() + ": element " + i
                        + " is " + g + ", expected " + expected[from + i]);
            }
        }
    }

    /** Every rank holds bitwise the same data (gathered as raw bits). */
    private long expectSameEverywhere(Tensor data) {
        int n = Math.toIntExact(data.numel());
        Tensor bits = scope.allocate("bits", DType.I32, n);
        for (int i = 0; i < n; i++) {
            bits.setInt(i, data.dtype() == DType.I32 ? data.getInt(i) : Float.floatToRawIntBits(data.getFloat(i)));
        }
        Tensor all = scope.allocate("all", DType.I32, n * comm.size());
        comm.allGather(bits, all);
        for (int q = 0; q < comm.size(); q++) {
            for (int i = 0; i < n; i++) {
                if (all.getInt((long) q * n + i) != bits.getInt(i)) {
                    throw new AssertionError("allReduce: rank " + q + " and rank " + comm.rank()
                            + " hold different bits at element " + i);
                }
            }
        }
        return n;
    }
}
