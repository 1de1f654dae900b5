package dev.panamoe.ops;

import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;

/**
 * The host synchronisations of one device backend: every call that blocks the calling thread
 * until the device has done something — a copy into host memory (it waits for the kernels
 * queued before it), a stream synchronise, a communicator waiting for its collective — is
 * counted here, by site. On a GPU each one leaves the device idle until the host queues more
 * work, so a training step should make none beyond reading its loss; the tests hold it to that
 * on the emulated device, which runs the same code paths.
 *
 * <p>A site is "what at Class.method", the first caller outside the tensor and memory
 * plumbing, so a count names the code that asked for the value. {@link #drains()} counts the
 * synchronisations that found work queued since the previous one (those that stall the
 * device); a second read right after the first finds the stream idle. Thread-safe.
 */
public final class HostSyncs {
    /**
     * Classes whose frames are plumbing: the site is the first frame of another class. The
     * backends are listed one by one: javac adds bridges of NativeBackend's public methods to
     * each public subclass, so their frames name the subclass.
     */
    private static final Set<String> PLUMBING = Set.of(HostSyncs.class.getName(), DeviceMemory.class.getName(),
            Tensor.class.getName(), NativeBackend.class.getName(), CpuBackend.class.getName(),
            CudaBackend.class.getName(), EmulatedCudaBackend.class.getName(), CudaRawMemory.class.getName(),
            EmulatedDeviceMemory.class.getName(), DispatchPlan.class.getName());
    private static final StackWalker WALKER = StackWalker.getInstance();

    private final Map<String, LongAdder> sites = new ConcurrentHashMap<>();
    private final LongAdder total = new LongAdder();
    private final LongAdder drains = new LongAdder();
    private final AtomicBoolean pending = new AtomicBoolean();

    /** Notes that work (a kernel, an asynchronous copy or memset) was queued on the device. */
    public void enqueued() {
        pending.set(true);
    }

    /** Counts one host-blocking call; what says which ("copy to host", "stream synchronize"...). */
    public void blocked(String what) {
        total.increment();
        if (pending.getAndSet(false)) {
            drains.increment();
        }
        sites.computeIfAbsent(what + " at " + caller(), k -> new LongAdder()).increment();
    }

    private static String caller() {
        return WALKER.walk(frames -> frames.filter(f -> !PLUMBING.contains(f.getClassName()))
                .map(f -> simpleName(f.getClassName()) + "." + f.getMethodName()).findFirst().orElse("?"));
    }

    private static String simpleName(String className) {
        return className.substring(className.lastIndexOf('.') + 1);
    }

    /** Host-blocking calls so far. */
    public long count() {
        return total.sum();
    }

    /** Those of {@link #count()} that found device work queued since the previous one. */
    public long drains() {
        return drains.sum();
    }

    /** Host-blocking calls so far by site, sorted by site. */
    public Map<String, Long> bySite() {
        Map<String, Long> out = new TreeMap<>();
        sites.forEach((site, n) -> out.put(site, n.sum()));
        return out;
    }

    /** Forgets the counts (e.g. at the start of a measured step). */
    public void reset() {
        sites.clear();
        total.reset();
        drains.reset();
    }

    @Override
    public String toString() {
        return count() + " host synchronisations (" + drains() + " with device work queued): " + bySite();
    }
}
