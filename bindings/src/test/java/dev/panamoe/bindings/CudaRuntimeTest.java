package dev.panamoe.bindings;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * cudart_h and CudaRuntime against the libcudart.so.13 found on this machine. Without the
 * library every test is skipped with the loader's reason; the device tests need a GPU and are
 * skipped with cudaGetDeviceCount's error where there is none (tag "gpu").
 */
class CudaRuntimeTest {
    private CudaRuntime.Devices devices;

    /** Per test, so that each is reported as skipped with the reason (a class-level abort shows as no tests). */
    @BeforeEach
    void cudart() {
        try {
            NativeLibraries.cudart();
        } catch (NativeLibraryUnavailableException e) {
            Assumptions.abort("libcudart.so.13 is not loadable here: " + e.getMessage());
        }
        devices = CudaRuntime.probe();
    }

    private void assumeGpu() {
        Assumptions.assumeTrue(devices.available(), () -> "no usable CUDA device: " + devices.reason());
    }

    @Test
    void libraryLoadsAndExportsEveryBoundFunction() throws ReflectiveOperationException {
        NativeLibraries.Loaded cudart = NativeLibraries.cudart();
        assertTrue(Files.isRegularFile(cudart.path()), "resolved to a file: " + cudart.path());
        List<Method> wrappers = java.util.Arrays.stream(cudart_h.class.getDeclaredMethods())
                .filter(m -> Modifier.isPublic(m.getModifiers()) && m.getName().startsWith("cuda") && !m.getName().contains("$"))
                .toList();
        assertTrue(wrappers.size() >= 24, "wrappers: " + wrappers.size());
        for (Method w : wrappers) {
            String name = w.getName();
            assertTrue(cudart.lookup().find(name).isPresent(), name + " is not exported by " + cudart.path());
            FunctionDescriptor d = (FunctionDescriptor) cudart_h.class.getMethod(name + "$descriptor").invoke(null);
            assertEquals(w.getParameterCount(), d.argumentLayouts().size(), name + " arity");
            assertEquals(cudart.lookup().find(name).orElseThrow(), cudart_h.class.getMethod(name + "$address").invoke(null));
        }
    }

    @Test
    void runtimeVersionIs13() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT);
            CudaRuntime.check(cudart_h.cudaRuntimeGetVersion(v), "cudaRuntimeGetVersion");
            assertEquals(13, v.get(ValueLayout.JAVA_INT, 0) / 1000, "runtime version " + v.get(ValueLayout.JAVA_INT, 0));
        }
    }

    @Test
    void errorCodesBecomeExceptionsWithTheRuntimesText() {
        assertEquals("out of memory", CudaRuntime.errorString(cudart_h.cudaErrorMemoryAllocation));
        assertEquals("cudaErrorMemoryAllocation", CudaRuntime.errorName(cudart_h.cudaErrorMemoryAllocation));
        assertEquals("cudaErrorNoDevice", CudaRuntime.errorName(cudart_h.cudaErrorNoDevice));
        CudaRuntime.check(cudart_h.cudaSuccess, "cudaFree");
        CudaException e = assertThrows(CudaException.class,
                () -> CudaRuntime.check(cudart_h.cudaErrorMemoryAllocation, "cudaMalloc(64 bytes)"));
        assertEquals("cudaMalloc(64 bytes): out of memory (cudaErrorMemoryAllocation = 2)", e.getMessage());
        assertEquals("cudaMalloc(64 bytes)", e.call());
        assertTrue(e.isOutOfMemory());
        CudaException invalid = assertThrows(CudaException.class,
                () -> CudaRuntime.check(cudart_h.cudaErrorInvalidValue, "cudaMemcpyAsync"));
        assertFalse(invalid.isOutOfMemory());
        assertEquals(cudart_h.cudaErrorInvalidValue, invalid.error());
    }

    /** The machines without a GPU: the runtime's own reason, as an exception and as the probe's reason. */
    @Test
    void withoutADeviceTheCountFailsWithTheDriversReason() {
        Assumptions.assumeFalse(devices.available(), () -> "this machine has " + devices.count() + " CUDA device(s)");
        CudaException e = assertThrows(CudaException.class, CudaRuntime::deviceCount);
        assertTrue(e.getMessage().startsWith("cudaGetDeviceCount: "), e.getMessage());
        assertTrue(e.getMessage().contains(CudaRuntime.errorString(e.error())), e.getMessage());
        assertEquals(e.getMessage(), devices.reason());
        assertEquals(0, devices.count());
        // every device call reports the same condition rather than crashing
        CudaException malloc = assertThrows(CudaException.class, () -> CudaRuntime.malloc(64));
        assertTrue(malloc.getMessage().startsWith("cudaMalloc(64 bytes): "), malloc.getMessage());
        assertThrows(CudaException.class, CudaRuntime::streamCreate);
    }

    @Tag("gpu")
    @Test
    void deviceProperties() {
        assumeGpu();
        CudaRuntime.DeviceProperties p = CudaRuntime.properties(0);
        assertFalse(p.name().isBlank(), p.toString());
        assertTrue(p.multiprocessors() > 0 && p.computeMajor() >= 7 && p.totalMemory() > (1L << 30), p.toString());
        CudaRuntime.MemoryInfo m = CudaRuntime.memoryInfo();
        assertTrue(m.free() > 0 && m.free() <= m.total(), m.toString());
        assertEquals(0, CudaRuntime.device());
    }

    @Tag("gpu")
    @Test
    void copiesMemsetStreamsAndEventsRoundTrip() {
        assumeGpu();
        CudaRuntime.lastError(); // start from a clean error state: the last assertion reads it
        int n = 1 << 16;
        MemorySegment stream = CudaRuntime.streamCreate();
        MemorySegment a = CudaRuntime.malloc(4L * n);
        MemorySegment b = CudaRuntime.malloc(4L * n);
        MemorySegment start = CudaRuntime.eventCreate();
        MemorySegment end = CudaRuntime.eventCreate();
        try (Arena arena = Arena.ofConfined()) {
            int[] values = new int[n];
            for (int i = 0; i < n; i++) values[i] = i * 7919;
            MemorySegment host = arena.allocateFrom(ValueLayout.JAVA_INT, values);
            MemorySegment back = arena.allocate(4L * n);
            CudaRuntime.eventRecord(start, stream);
            CudaRuntime.memcpyAsync(a, host, 4L * n, CudaRuntime.CopyKind.HOST_TO_DEVICE, stream);
            CudaRuntime.memcpyAsync(b, a, 4L * n, CudaRuntime.CopyKind.DEVICE_TO_DEVICE, stream);
            CudaRuntime.memcpyAsync(back, b, 4L * n, CudaRuntime.CopyKind.DEVICE_TO_HOST, stream);
            CudaRuntime.eventRecord(end, stream);
            CudaRuntime.streamSynchronize(stream);
            CudaRuntime.eventSynchronize(end);
            assertArrayEquals(values, back.toArray(ValueLayout.JAVA_INT));
            assertTrue(CudaRuntime.eventElapsedMillis(start, end) >= 0);

            CudaRuntime.memsetAsync(b, 0x01, 4L * n, stream);
            CudaRuntime.memcpyAsync(back, b, 4L * n, CudaRuntime.CopyKind.DEVICE_TO_HOST, stream);
            CudaRuntime.streamSynchronize(stream);
            assertEquals(0x01010101, back.getAtIndex(ValueLayout.JAVA_INT, n - 1));
            CudaRuntime.deviceSynchronize();
            assertEquals(cudart_h.cudaSuccess, CudaRuntime.lastError());
        } finally {
            CudaRuntime.free(a);
            CudaRuntime.free(b);
            CudaRuntime.eventDestroy(start);
            CudaRuntime.eventDestroy(end);
            CudaRuntime.streamDestroy(stream);
        }
        CudaException oom = assertThrows(CudaException.class, () -> CudaRuntime.malloc(1L << 50));
        assertTrue(oom.isOutOfMemory(), oom.getMessage());
        assertEquals(cudart_h.cudaErrorMemoryAllocation, CudaRuntime.lastError(), "the failed malloc is the last error");
    }

    /** What the device backend and NCCL build on to avoid host waits: pinned staging, ordering events, the pool threshold. */
    @Tag("gpu")
    @Test
    void pinnedCopiesEventOrderingAndThePoolThreshold() {
        assumeGpu();
        int n = 1 << 12;
        MemorySegment first = CudaRuntime.streamCreate();
        MemorySegment second = CudaRuntime.streamCreate();
        MemorySegment pinned = CudaRuntime.mallocHost(4L * n);
        MemorySegment a = CudaRuntime.malloc(4L * n);
        MemorySegment b = CudaRuntime.malloc(4L * n);
        MemorySegment event = CudaRuntime.eventCreateForOrdering();
        try (Arena arena = Arena.ofConfined()) {
            assertTrue(CudaRuntime.eventDone(event), "an event never recorded counts as done");
            for (int i = 0; i < n; i++) pinned.setAtIndex(ValueLayout.JAVA_INT, i, 3 * i + 1);
            CudaRuntime.memcpyAsync(a, pinned, 4L * n, CudaRuntime.CopyKind.HOST_TO_DEVICE, first);
            CudaRuntime.eventRecord(event, first);
            CudaRuntime.streamWaitEvent(second, event);
            CudaRuntime.memcpyAsync(b, a, 4L * n, CudaRuntime.CopyKind.DEVICE_TO_DEVICE, second);
            MemorySegment back = arena.allocate(4L * n);
            CudaRuntime.memcpyAsync(back, b, 4L * n, CudaRuntime.CopyKind.DEVICE_TO_HOST, second);
            CudaRuntime.streamSynchronize(second);
            assertTrue(CudaRuntime.eventDone(event));
            assertEquals(3 * (n - 1) + 1, back.getAtIndex(ValueLayout.JAVA_INT, n - 1));

            MemorySegment pool = CudaRuntime.defaultMemPool(0);
            long before = CudaRuntime.memPoolReleaseThreshold(pool);
            CudaRuntime.setMemPoolReleaseThreshold(pool, -1L);
            assertEquals(-1L, CudaRuntime.memPoolReleaseThreshold(pool), "UINT64_MAX");
            CudaRuntime.memPoolTrimTo(pool, 0);
            CudaRuntime.setMemPoolReleaseThreshold(pool, before);
        } finally {
            CudaRuntime.eventDestroy(event);
            CudaRuntime.free(a);
            CudaRuntime.free(b);
            CudaRuntime.freeHost(pinned);
            CudaRuntime.streamDestroy(first);
            CudaRuntime.streamDestroy(second);
        }
    }
}
