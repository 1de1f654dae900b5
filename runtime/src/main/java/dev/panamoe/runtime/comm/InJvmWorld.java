package dev.panamoe.runtime.comm;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

/**
 * A world of ranks that are threads of this JVM, sharing memory. The world records the first
 * failure (a rank that threw, a timeout, an explicit abort): from then on every call on every
 * group of the world throws a CommunicatorException naming that rank and its cause.
 *
 * <pre>{@code
 * List<Float> losses = InJvmWorld.run(8, Duration.ofSeconds(30), comm -> trainOneStep(comm));
 * }</pre>
 */
public final class InJvmWorld {
    /** How long {@link #run} waits for the other ranks to stop once one has failed, beyond the timeout. */
    private static final Duration GRACE = Duration.ofSeconds(2);

    /** The first failure: which world rank and why. */
    record Failure(int rank, Throwable cause) {
        String describe() {
            return "rank " + rank + " failed: " + cause;
        }
    }

    private final int size;
    private final Duration timeout;
    private final AtomicReference<Failure> failure = new AtomicReference<>();
    private final List<InJvmGroup> groups = new CopyOnWriteArrayList<>();

    private InJvmWorld(int size, Duration timeout) {
        if (size < 1) {
            throw new IllegalArgumentException("ranks: must be >= 1, got " + size);
        }
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout: must be positive, got " + timeout);
        }
        this.size = size;
        this.timeout = timeout;
    }

    /**
     * One communicator per rank of a new world, to be used by one thread each (e.g. in JShell).
     * {@link #run} is the usual way: it also starts the threads and reports the first failure.
     */
    public static List<Communicator> create(int ranks, Duration timeout) {
        InJvmWorld world = new InJvmWorld(ranks, timeout);
        int[] members = new int[ranks];
        Arrays.setAll(members, r -> r);
        InJvmGroup group = world.newGroup("world", members);
        List<Communicator> comms = new ArrayList<>(ranks);
        for (int r = 0; r < ranks; r++) {
            comms.add(new InJvmCommunicator(group, r));
        }
        return comms;
    }

    /**
     * Runs perRank on one thread per rank and returns each rank's result, in rank order. The
     * first rank that throws aborts the world, so every other rank stops at its next (or current)
     * call; this method then throws one CommunicatorException whose failedRank and cause are that
     * first failure (the other ranks' consequential exceptions are not repeated).
     */
    public static <T> List<T> run(int ranks, Duration timeout, Function<Communicator, T> perRank) {
        List<Communicator> comms = create(ranks, timeout);
        InJvmWorld world = ((InJvmCommunicator) comms.getFirst()).group().world();
        Object[] results = new Object[ranks];
        CountDownLatch done = new CountDownLatch(ranks);
        Thread[] threads = new Thread[ranks];
        for (int r = 0; r < ranks; r++) {
            int rank = r;
            threads[r] = Thread.ofPlatform().name("panamoe-rank-" + r).daemon().unstarted(() -> {
                try (Communicator comm = comms.get(rank)) {
                    results[rank] = perRank.apply(comm);
                } catch (Throwable t) {
                    world.abort(rank, t);
                } finally {
                    done.countDown();
                }
            });
        }
        for (Thread t : threads) {
            t.start();
        }
        world.awaitRanks(done, threads);
        Failure f = world.failure.get();
        if (f != null) {
            throw new CommunicatorException("in-JVM world of " + ranks + " ranks: " + f.describe(), f.rank(), f.cause());
        }
        @SuppressWarnings("unchecked")
        List<T> list = (List<T>) Arrays.asList(results);
        return list;
    }

    /**
     * Waits for every rank; once one has failed, gives the others the timeout (they stop at their
     * next call) plus a grace period, then interrupts the stragglers and stops waiting for them.
     */
    private void awaitRanks(CountDownLatch done, Thread[] threads) {
        try {
            while (failure.get() == null) {
                if (done.await(50, TimeUnit.MILLISECONDS)) {
                    return;
                }
            }
            if (!done.await(timeout.plus(GRACE).toMillis(), TimeUnit.MILLISECONDS)) {
                for (Thread t : threads) {
                    t.interrupt();
                }
                done.await(GRACE.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            abort(-1, e);
        }
    }

    int size() {
        return size;
    }

    Duration timeout() {
        return timeout;
    }

    InJvmGroup newGroup(String name, int[] worldRanks) {
        InJvmGroup group = new InJvmGroup(this, name, worldRanks);
        groups.add(group);
        if (failure.get() != null) {
            group.wakeAll(); // an abort that raced with the split still reaches the new group
        }
        return group;
    }

    /** Records the first failure (later ones are consequences) and wakes every waiting rank. */
    void abort(int worldRank, Throwable cause) {
        if (failure.compareAndSet(null, new Failure(worldRank, cause))) {
            for (InJvmGroup g : groups) {
                g.wakeAll();
            }
        }
    }

    /** Throws, on a rank inside op, if the world has failed. */
    void checkAlive(String op, int worldRank) {
        Failure f = failure.get();
        if (f != null) {
            throw new CommunicatorException(op + " on rank " + worldRank + " stopped: " + f.describe(), f.rank(), f.cause());
        }
    }
}
