package dev.panamoe.runtime.comm;

import dev.panamoe.ops.DType;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;

/**
 * The state the ranks of one in-JVM group share: a rendezvous where every rank deposits a value
 * and waits (on a condition, never spinning) until all have, and one mailbox per (sender,
 * receiver) pair for send/recv. Every wait ends at the call's deadline or when the world fails.
 */
final class InJvmGroup {
    /** What every rank sees once all have arrived: each rank's value and one map for shared results. */
    record Round(Object[] values, Map<Object, Object> shared) {}

    /** A sent tensor, copied at send time so the sender may reuse its buffer. */
    record Message(DType dtype, long numel, MemorySegment data) {}

    private record Arrival(String op, Object value) {}

    private final InJvmWorld world;
    private final String name;
    private final int[] worldRanks;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private Arrival[] arrivals;
    private int arrived;
    private long generation;
    private Round published;
    private final Map<Long, ArrayDeque<Message>> mailboxes = new HashMap<>();

    InJvmGroup(InJvmWorld world, String name, int[] worldRanks) {
        this.world = world;
        this.name = name;
        this.worldRanks = worldRanks.clone();
        this.arrivals = new Arrival[worldRanks.length];
    }

    InJvmWorld world() {
        return world;
    }

    String name() {
        return name;
    }

    int size() {
        return worldRanks.length;
    }

    int worldRank(int rank) {
        return worldRanks[rank];
    }

    void wakeAll() {
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Deposits value as rank's part of op and waits until every rank of the group has deposited
     * its part of the same round. Every rank gets the same Round; a rank that called a different
     * op makes every rank throw (the ranks have diverged).
     */
    Round exchange(int rank, String op, Object value, long deadline) {
        Round round;
        lock.lock();
        try {
            world.checkAlive(op, worldRanks[rank]);
            long gen = generation;
            arrivals[rank] = new Arrival(op, value);
            if (++arrived == arrivals.length) {
                Object[] values = new Object[arrivals.length];
                for (int r = 0; r < values.length; r++) {
                    values[r] = arrivals[r];
                }
                published = new Round(values, new ConcurrentHashMap<>());
                arrivals = new Arrival[arrivals.length];
                arrived = 0;
                generation++;
                changed.signalAll();
            }
            while (generation == gen) {
                world.checkAlive(op, worldRanks[rank]);
                awaitUntil(deadline, rank, op, () -> missingRanks());
            }
            round = published;
        } finally {
            lock.unlock();
        }
        return unwrap(round, op);
    }

    /** Checks that every rank called the same op, and strips the op names off the values. */
    private Round unwrap(Round round, String op) {
        Object[] values = new Object[round.values().length];
        for (int r = 0; r < values.length; r++) {
            Arrival a = (Arrival) round.values()[r];
            if (!a.op().equals(op)) {
                throw new CommunicatorException("collectives diverged in group " + name + ": rank " + r + " called "
                        + a.op() + " while another called " + op + " (every rank must call the same collectives in the same order)");
            }
            values[r] = a.value();
        }
        return new Round(values, round.shared());
    }

    void post(int from, int to, Message message) {
        lock.lock();
        try {
            world.checkAlive("send", worldRanks[from]);
            mailboxes.computeIfAbsent(mailbox(from, to), k -> new ArrayDeque<>()).add(message);
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    Message take(int from, int to, long deadline) {
        lock.lock();
        try {
            while (true) {
                world.checkAlive("recv", worldRanks[to]);
                ArrayDeque<Message> box = mailboxes.get(mailbox(from, to));
                if (box != null && !box.isEmpty()) {
                    return box.poll();
                }
                awaitUntil(deadline, to, "recv from rank " + from, () -> List.of(from));
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits (holding the lock) for a change, the world's failure, or the deadline; at the deadline
     * the world fails with a timeout that names the first rank it was waiting for.
     */
    private void awaitUntil(long deadline, int rank, String op, Supplier<List<Integer>> waitingFor) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            List<Integer> missing = waitingFor.get().stream().map(r -> worldRanks[r]).toList();
            CommunicatorException timeout = new CommunicatorException(op + " on rank " + worldRanks[rank] + " timed out after "
                    + world.timeout().toMillis() + " ms in group " + name + ": world ranks " + missing + " did not arrive",
                    missing.isEmpty() ? -1 : missing.getFirst(), null);
            world.abort(timeout.failedRank(), timeout);
            throw timeout;
        }
        try {
            changed.await(left, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            world.abort(worldRanks[rank], e);
            throw new CommunicatorException(op + " on rank " + worldRanks[rank] + " was interrupted", worldRanks[rank], e);
        }
    }

    private List<Integer> missingRanks() {
        List<Integer> missing = new ArrayList<>();
        for (int r = 0; r < arrivals.length; r++) {
            if (arrivals[r] == null) {
                missing.add(r);
            }
        }
        return missing;
    }

    private long mailbox(int from, int to) {
        return (long) from * arrivals.length + to;
    }
}
