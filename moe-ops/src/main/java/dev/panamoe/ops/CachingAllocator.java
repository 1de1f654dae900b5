package dev.panamoe.ops;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Map;

/**
 * Memory blocks behind a cache, as PyTorch's CUDA caching allocator: a block freed by a tensor
 * scope is kept in a free list of its size class and handed to the next allocation of that class
 * on the same stream, instead of going back to its {@link BlockSource}: cudaFree/cudaMalloc on a
 * device (both synchronise it, and cudaMalloc takes milliseconds at large sizes); on the CPU,
 * free/aligned_alloc, after which a fresh block is mapped in and zeroed page by page. The
 * statistics' "device" mallocs and frees are the block source's.
 *
 * <p>Size classes: requests round up to a multiple of 512 bytes below 1 MiB, and to a quarter of
 * their power of two above (1, 1.25, 1.5, 1.75, 2, 2.5 MiB, ...), so a class wastes under 25%
 * and a training step's repeated shapes reuse the same blocks. Blocks are not split or merged.
 *
 * <p>Stream order: a block is reused only on the stream it was allocated on, so the kernels
 * queued on that stream before the free finish before any kernel of the new owner starts
 * (no event needed). When the device is out of memory the cache is released and the
 * allocation retried once. Thread-safe.
 *
 * <p>Retention: on a device the cache keeps every freed block (the device's memory is the bound,
 * and a failed allocation releases the cache). {@link #boundedByPeak} never holds more than the
 * most bytes ever allocated at once (its high-water mark, which {@link #resetPeaks} does not
 * lower): a new block first releases the oldest cached blocks that would take it past that. For
 * host memory, where a JVM that runs many differently shaped models (a test suite) must not keep
 * a block of every shape it ever used, while a training loop, whose steps repeat their shapes,
 * finds them all in the cache and allocates nothing new.
 */
public final class CachingAllocator implements AutoCloseable {
    static final long SMALL_ROUNDING = 512;
    static final long LARGE = 1L << 20;
    static final int DIVISIONS_PER_POWER_OF_TWO = 4;

    /** An allocation of {@link #size()} bytes (its size class), handed out for {@link #requested()} bytes. */
    public static final class Block {
        private final CachingAllocator owner;
        private final long address;
        private final long size;
        private final long stream;
        private long requested;
        private boolean allocated;

        private Block(CachingAllocator owner, long address, long size, long stream) {
            this.owner = owner;
            this.address = address;
            this.size = size;
            this.stream = stream;
        }

        public long address() {
            return address;
        }

        public long size() {
            return size;
        }

        public long stream() {
            return stream;
        }

        public long requested() {
            return requested;
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "block 0x%x of %d bytes on stream 0x%x", address, size, stream);
        }
    }

    /**
     * Counters, as torch.cuda.memory_stats: bytes in blocks handed out (by size class, and as
     * requested), bytes held from the block source (handed out + cached), their peaks since creation or
     * {@link #resetPeaks()}, and how allocations were served.
     */
    public record Stats(long allocatedBytes, long requestedBytes, long reservedBytes, long peakAllocatedBytes,
            long peakReservedBytes, long allocations, long cacheHits, long deviceMallocs, long deviceFrees) {
        public long cachedBytes() {
            return reservedBytes - allocatedBytes;
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%.1f MiB allocated (peak %.1f), %.1f MiB reserved (peak %.1f), "
                    + "%d allocations, %d from the cache, %d device mallocs, %d device frees", mib(allocatedBytes),
                    mib(peakAllocatedBytes), mib(reservedBytes), mib(peakReservedBytes), allocations, cacheHits,
                    deviceMallocs, deviceFrees);
        }

        private static double mib(long bytes) {
            return bytes / (double) (1 << 20);
        }
    }

    private record SizeClass(long stream, long size) {
    }

    private final BlockSource raw;
    private final boolean boundedByPeak;
    private final Map<SizeClass, ArrayDeque<Block>> cache = new HashMap<>();
    /** The cached blocks, oldest first; in each size class's list the oldest is last. */
    private final LinkedHashSet<Block> cachedOldestFirst = new LinkedHashSet<>();
    private boolean closed;
    private long allocatedBytes;
    private long requestedBytes;
    private long reservedBytes;
    private long peakAllocatedBytes;
    /** The most ever allocated at once (kept by {@link #boundedByPeak} only): its bound on reserved bytes. */
    private long highWaterBytes;
    private long peakReservedBytes;
    private long allocations;
    private long cacheHits;
    private long deviceMallocs;
    private long deviceFrees;

    /** A cache that keeps every freed block (device memory). */
    public CachingAllocator(BlockSource raw) {
        this(raw, false);
    }

    private CachingAllocator(BlockSource raw, boolean boundedByPeak) {
        this.raw = Checks.notNull("raw", raw);
        this.boundedByPeak = boundedByPeak;
    }

    /** A cache that never holds more than the most bytes ever allocated at once (host memory): see the class comment. */
    public static CachingAllocator boundedByPeak(BlockSource raw) {
        return new CachingAllocator(raw, true);
    }

    public Device device() {
        return raw.device();
    }

    /** The size class of a request: see the class comment. */
    static long roundSize(long bytes) {
        if (bytes < LARGE) {
            return Math.max(SMALL_ROUNDING, roundUp(bytes, SMALL_ROUNDING));
        }
        return roundUp(bytes, Long.highestOneBit(bytes) / DIVISIONS_PER_POWER_OF_TWO);
    }

    private static long roundUp(long bytes, long step) {
        return (bytes + step - 1) / step * step;
    }

    /** A block of at least bytes (0 gives the smallest class), for use on stream. */
    public synchronized Block allocate(long bytes, long stream) {
        if (bytes < 0) {
            throw new IllegalArgumentException("bytes: must be >= 0, got " + bytes);
        }
        if (closed) {
            throw new IllegalStateException("caching allocator of " + device() + " is closed; cannot allocate "
                    + bytes + " bytes");
        }
        long size = roundSize(bytes);
        ArrayDeque<Block> free = cache.get(new SizeClass(stream, size));
        Block block;
        if (free != null && !free.isEmpty()) {
            block = free.pop();
            cachedOldestFirst.remove(block);
            cacheHits++;
        } else {
            if (boundedByPeak) {
                highWaterBytes = Math.max(highWaterBytes, allocatedBytes + size);
                while (reservedBytes + size > highWaterBytes && !cachedOldestFirst.isEmpty()) {
                    Block oldest = cachedOldestFirst.removeFirst();
                    cache.get(new SizeClass(oldest.stream, oldest.size)).removeLast();
                    release(oldest);
                }
            }
            block = new Block(this, mallocReleasingCache(size), size, stream);
            deviceMallocs++;
            reservedBytes += size;
            peakReservedBytes = Math.max(peakReservedBytes, reservedBytes);
        }
        block.allocated = true;
        block.requested = bytes;
        allocations++;
        allocatedBytes += size;
        requestedBytes += bytes;
        peakAllocatedBytes = Math.max(peakAllocatedBytes, allocatedBytes);
        return block;
    }

    private long mallocReleasingCache(long size) {
        try {
            return raw.malloc(size);
        } catch (DeviceOutOfMemoryException first) {
            emptyCache();
            try {
                return raw.malloc(size);
            } catch (DeviceOutOfMemoryException e) {
                throw new DeviceOutOfMemoryException(device() + ": out of memory allocating " + size
                        + " bytes after releasing the cache (" + stats() + "): " + e.getMessage(), e);
            }
        }
    }

    /** Returns a block to its size class's free list (to the block source once the allocator is closed). */
    public synchronized void free(Block block) {
        Checks.notNull("block", block);
        if (block.owner != this) {
            throw new IllegalArgumentException("block: " + block + " belongs to another allocator");
        }
        if (!block.allocated) {
            throw new IllegalStateException("free: " + block + " is not allocated (freed twice?)");
        }
        block.allocated = false;
        allocatedBytes -= block.size;
        requestedBytes -= block.requested;
        if (closed) {
            release(block);
            return;
        }
        cache.computeIfAbsent(new SizeClass(block.stream, block.size), k -> new ArrayDeque<>()).push(block);
        cachedOldestFirst.add(block);
    }

    /** Gives every cached block back to the block source (cudaFree, free); blocks in use stay. */
    public synchronized void emptyCache() {
        for (ArrayDeque<Block> free : cache.values()) {
            while (!free.isEmpty()) {
                release(free.pop());
            }
        }
        cache.clear();
        cachedOldestFirst.clear();
    }

    private void release(Block block) {
        raw.free(block.address);
        deviceFrees++;
        reservedBytes -= block.size;
    }

    public synchronized Stats stats() {
        return new Stats(allocatedBytes, requestedBytes, reservedBytes, peakAllocatedBytes, peakReservedBytes,
                allocations, cacheHits, deviceMallocs, deviceFrees);
    }

    /** Restarts the peaks from the current values. */
    public synchronized void resetPeaks() {
        peakAllocatedBytes = allocatedBytes;
        peakReservedBytes = reservedBytes;
    }

    /** Releases the cache and refuses new allocations; blocks still in use go back to the source when freed. */
    @Override
    public synchronized void close() {
        emptyCache();
        closed = true;
    }
}
