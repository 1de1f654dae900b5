package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The caching allocator's logic over an emulated device: size classes, reuse, stream order, statistics, errors. */
class CachingAllocatorTest {
    private static final long MIB = 1 << 20;
    private static final long STREAM = 0x10;
    private static final long OTHER_STREAM = 0x20;

    private final EmulatedDeviceMemory device = new EmulatedDeviceMemory(Device.cuda(0), 64 * MIB);
    private final CachingAllocator allocator = new CachingAllocator(device);

    @Test
    void sizeClassesRoundUpBy512BytesThenByQuartersOfAPowerOfTwo() {
        assertEquals(512, CachingAllocator.roundSize(0));
        assertEquals(512, CachingAllocator.roundSize(1));
        assertEquals(512, CachingAllocator.roundSize(512));
        assertEquals(1024, CachingAllocator.roundSize(513));
        assertEquals(MIB, CachingAllocator.roundSize(MIB - 1));
        assertEquals(MIB, CachingAllocator.roundSize(MIB));
        assertEquals(MIB + MIB / 4, CachingAllocator.roundSize(MIB + 1));
        assertEquals(3 * MIB, CachingAllocator.roundSize(3 * MIB));
        assertEquals(6 * MIB, CachingAllocator.roundSize(5 * MIB + 1));
        assertEquals(40L << 30, CachingAllocator.roundSize((36L << 30) + 1));
        SplittableRandom rng = new SplittableRandom(7);
        for (int i = 0; i < 10_000; i++) {
            long bytes = rng.nextLong(1, 1L << rng.nextInt(1, 40));
            long size = CachingAllocator.roundSize(bytes);
            assertTrue(size >= bytes && size < bytes * 1.25 + 512, bytes + " -> " + size);
            assertEquals(0, size % 512, bytes + " -> " + size);
            assertEquals(size, CachingAllocator.roundSize(size), "a class is its own class: " + size);
        }
    }

    @Test
    void aFreedBlockServesTheNextRequestOfItsClassOnItsStream() {
        CachingAllocator.Block a = allocator.allocate(1000, STREAM);
        assertEquals(1024, a.size());
        allocator.free(a);
        CachingAllocator.Block b = allocator.allocate(900, STREAM);
        assertEquals(a.address(), b.address(), "reused");
        CachingAllocator.Block c = allocator.allocate(2000, STREAM);
        assertNotEquals(b.address(), c.address());
        assertEquals(2, device.mallocs());
        CachingAllocator.Stats s = allocator.stats();
        assertEquals(3, s.allocations());
        assertEquals(1, s.cacheHits());
        assertEquals(2, s.deviceMallocs());
    }

    @Test
    void blocksAreNotReusedAcrossStreams() {
        CachingAllocator.Block a = allocator.allocate(4096, STREAM);
        allocator.free(a);
        CachingAllocator.Block b = allocator.allocate(4096, OTHER_STREAM);
        assertNotEquals(a.address(), b.address(), "another stream may still be using a's memory");
        assertEquals(OTHER_STREAM, b.stream());
        assertEquals(a.address(), allocator.allocate(4096, STREAM).address());
    }

    @Test
    void statisticsTrackAllocatedReservedAndPeaks() {
        CachingAllocator.Block a = allocator.allocate(3 * MIB, STREAM);   // class 3 MiB
        CachingAllocator.Block b = allocator.allocate(100, STREAM);       // class 512
        CachingAllocator.Stats s = allocator.stats();
        assertEquals(3 * MIB + 512, s.allocatedBytes());
        assertEquals(3 * MIB + 100, s.requestedBytes());
        assertEquals(3 * MIB + 512, s.reservedBytes());
        allocator.free(a);
        s = allocator.stats();
        assertEquals(512, s.allocatedBytes());
        assertEquals(3 * MIB + 512, s.reservedBytes(), "a freed block stays reserved in the cache");
        assertEquals(3 * MIB, s.cachedBytes());
        assertEquals(3 * MIB + 512, s.peakAllocatedBytes());
        allocator.resetPeaks();
        assertEquals(512, allocator.stats().peakAllocatedBytes());
        allocator.free(b);
        assertEquals(0, allocator.stats().allocatedBytes());
        assertEquals(0, allocator.stats().requestedBytes());
        assertEquals(device.used(), allocator.stats().reservedBytes(), "reserved is what the device handed out");
    }

    @Test
    void emptyCacheReturnsCachedBlocksOnly() {
        List<CachingAllocator.Block> blocks = new ArrayList<>();
        for (int i = 1; i <= 6; i++) {
            blocks.add(allocator.allocate(i * 10_000L, STREAM));
        }
        for (int i = 0; i < 4; i++) {
            allocator.free(blocks.get(i));
        }
        allocator.emptyCache();
        assertEquals(2, device.liveAllocations(), "the two blocks in use stay");
        assertEquals(4, device.frees());
        CachingAllocator.Stats s = allocator.stats();
        assertEquals(s.allocatedBytes(), s.reservedBytes());
        assertEquals(0, s.cachedBytes());
        assertEquals(4, s.deviceFrees());
        device.region(blocks.get(5).address(), blocks.get(5).size()); // still live on the device
    }

    @Test
    void aCacheBoundedByThePeakReleasesItsOldestBlocksFirst() {
        CachingAllocator bounded = CachingAllocator.boundedByPeak(device);
        // High-water mark 5 MiB: two blocks of the 1 MiB class and one of 3 MiB in use at once.
        CachingAllocator.Block older = bounded.allocate(MIB, STREAM);
        CachingAllocator.Block newer = bounded.allocate(MIB, STREAM);
        CachingAllocator.Block big = bounded.allocate(3 * MIB, STREAM);
        bounded.free(older);
        bounded.free(newer);
        bounded.free(big); // all 5 MiB cached
        assertEquals(0, device.frees());
        bounded.resetPeaks(); // a statistic: it does not lower the bound
        // A new 512 KiB block would hold 5.5 MiB: the oldest cached block, older, goes back first, and only it.
        CachingAllocator.Block small = bounded.allocate(MIB / 2, STREAM);
        assertEquals(1, device.frees());
        assertEquals(4 * MIB + MIB / 2, bounded.stats().reservedBytes());
        assertThrows(IllegalStateException.class, () -> device.region(older.address(), 1), "older went back");
        device.region(big.address(), 1); // the largest block is not the oldest: kept
        assertEquals(newer.address(), bounded.allocate(MIB, STREAM).address(), "its class still hands out newer");
        assertEquals(big.address(), bounded.allocate(3 * MIB, STREAM).address());
        bounded.free(small);
        assertEquals(4, device.mallocs());
        // A block that raises the mark (4 + 4 MiB in use) leaves no room for anything cached: small goes back.
        CachingAllocator.Block more = bounded.allocate(4 * MIB, STREAM);
        assertEquals(2, device.frees());
        assertEquals(8 * MIB, bounded.stats().reservedBytes());
        bounded.free(more);
    }

    @Test
    void outOfMemoryReleasesTheCacheAndRetriesOnce() {
        CachingAllocator.Block big = allocator.allocate(40 * MIB, STREAM);
        allocator.free(big);
        // 40 MiB cached + 32 MiB do not fit in 64 MiB: the cache goes back to the device first.
        CachingAllocator.Block next = allocator.allocate(32 * MIB, STREAM);
        assertEquals(32 * MIB, next.size());
        assertEquals(1, device.frees());
        assertEquals(32 * MIB, allocator.stats().reservedBytes());
        DeviceOutOfMemoryException e = assertThrows(DeviceOutOfMemoryException.class,
                () -> allocator.allocate(40 * MIB, STREAM));
        assertTrue(e.getMessage().startsWith("cuda:0: out of memory allocating 41943040 bytes"), e.getMessage());
        assertTrue(e.getMessage().contains("32.0 MiB allocated"), e.getMessage());
        assertEquals(32 * MIB, allocator.stats().allocatedBytes(), "a failed allocation changes nothing");
    }

    @Test
    void doubleFreeForeignBlocksAndUseAfterCloseFail() {
        CachingAllocator.Block a = allocator.allocate(10, STREAM);
        allocator.free(a);
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> allocator.free(a));
        assertTrue(twice.getMessage().contains("freed twice") && twice.getMessage().contains(a.toString()),
                twice.getMessage());
        CachingAllocator other = new CachingAllocator(new EmulatedDeviceMemory(Device.cuda(1), MIB));
        CachingAllocator.Block foreign = other.allocate(10, STREAM);
        IllegalArgumentException wrong = assertThrows(IllegalArgumentException.class, () -> allocator.free(foreign));
        assertTrue(wrong.getMessage().contains("another allocator"), wrong.getMessage());
        assertThrows(IllegalArgumentException.class, () -> allocator.allocate(-1, STREAM));

        CachingAllocator.Block inUse = allocator.allocate(10_000, STREAM);
        allocator.close();
        assertEquals(1, device.liveAllocations(), "closing released the cache, not the block in use");
        IllegalStateException closed = assertThrows(IllegalStateException.class, () -> allocator.allocate(8, STREAM));
        assertTrue(closed.getMessage().contains("cuda:0") && closed.getMessage().contains("closed"),
                closed.getMessage());
        allocator.free(inUse);
        assertEquals(0, device.liveAllocations(), "a block freed after close goes straight to the device");
        assertEquals(0, allocator.stats().reservedBytes());
    }

    @Test
    void randomTrafficKeepsTheBooksBalanced() {
        EmulatedDeviceMemory device = new EmulatedDeviceMemory(Device.cuda(0), 1L << 30);
        CachingAllocator allocator = new CachingAllocator(device);
        SplittableRandom rng = new SplittableRandom(11);
        List<CachingAllocator.Block> live = new ArrayList<>();
        long requested = 0;
        for (int i = 0; i < 5000; i++) {
            if (!live.isEmpty() && rng.nextInt(3) == 0) {
                CachingAllocator.Block b = live.remove(rng.nextInt(live.size()));
                requested -= b.requested();
                allocator.free(b);
            } else {
                long bytes = rng.nextLong(0, 1L << rng.nextInt(1, 21));
                CachingAllocator.Block b = allocator.allocate(bytes, rng.nextBoolean() ? STREAM : OTHER_STREAM);
                device.region(b.address(), b.size()); // the whole class is backed
                live.add(b);
                requested += bytes;
            }
            if (rng.nextInt(500) == 0) {
                allocator.emptyCache();
            }
        }
        CachingAllocator.Stats s = allocator.stats();
        assertEquals(requested, s.requestedBytes());
        assertEquals(live.stream().mapToLong(CachingAllocator.Block::size).sum(), s.allocatedBytes());
        assertEquals(device.used(), s.reservedBytes());
        assertEquals(s.deviceMallocs() - s.deviceFrees(), device.liveAllocations());
        assertTrue(s.cacheHits() > 1000, "reuse happened: " + s);
        assertEquals(s.allocations(), s.cacheHits() + s.deviceMallocs());
    }
}
