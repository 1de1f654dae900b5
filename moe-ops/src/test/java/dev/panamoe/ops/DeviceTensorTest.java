package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Tensors on a device, over emulated device memory: host access only through copies, scopes
 * that return their blocks to the caching allocator, zero-filled reuse, device-side tables, and
 * errors instead of host dereferences of device addresses.
 */
class DeviceTensorTest {
    private final EmulatedCudaBackend gpu = new EmulatedCudaBackend(1 << 26);

    @Test
    void hostAccessorsCopyThroughTheBackend() {
        try (TensorScope scope = TensorScope.confined(gpu)) {
            Tensor t = scope.ofFloats("x", new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            assertEquals(Device.cuda(0), t.device());
            assertEquals(0, t.data().byteSize(), "a device tensor's segment has no host extent");
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, t.toFloatArray());
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6},
                    gpu.memory().region(t.data().address(), 24).toArray(ValueLayout.JAVA_FLOAT), "stored on the device");
            t.setFloat(4, -7f);
            assertEquals(-7f, t.getFloat(4));
            assertArrayEquals(new float[] {4, -7, 6}, t.slice(1, 2).toFloatArray());
            t.slice(0, 1).fill(0.5f);
            assertArrayEquals(new float[] {0.5f, 0.5f, 0.5f, 4, -7, 6}, t.toFloatArray());
            t.fill(0f);
            assertArrayEquals(new float[6], t.toFloatArray());

            Tensor ids = scope.ofInts("ids", new int[] {3, 1, 4, 1}, 4);
            assertArrayEquals(new int[] {3, 1, 4, 1}, ids.toIntArray());
            ids.setInt(2, 9);
            assertEquals(9, ids.getInt(2));

            Tensor half = scope.allocate("h", DType.BF16, 3);
            half.copyFrom(new float[] {1.5f, -2f, 1f / 3});
            assertArrayEquals(new float[] {1.5f, -2f, Tensor.bf16ToFloat(Tensor.floatToBf16(1f / 3))},
                    half.toFloatArray());
        }
    }

    @Test
    void copiesBetweenHostAndDeviceTensors() {
        try (TensorScope host = TensorScope.confined(CpuBackend.get()); TensorScope dev = TensorScope.confined(gpu)) {
            Tensor cpu = host.ofFloats("cpu", new float[] {1, 2, 3, 4}, 4);
            Tensor a = dev.allocate("a", DType.F32, 2, 2);
            a.copyFrom(cpu);
            Tensor b = dev.allocate("b", DType.F32, 4);
            b.copyFrom(a);
            Tensor back = host.allocate("back", DType.F32, 4);
            back.copyFrom(b);
            assertArrayEquals(new float[] {1, 2, 3, 4}, back.toFloatArray());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> b.copyFrom(dev.allocate("ints", DType.I32, 4)));
            assertTrue(e.getMessage().startsWith("src: expected f32 with 4 elements"), e.getMessage());
        }
    }

    @Test
    void nothingDereferencesADeviceAddressOnTheHost() {
        try (TensorScope scope = TensorScope.confined(gpu)) {
            Tensor t = scope.allocate("w", DType.F32, 4, 4);
            IndexOutOfBoundsException outside = assertThrows(IndexOutOfBoundsException.class, () -> t.getFloat(16));
            assertTrue(outside.getMessage().contains("'w' f32[4, 4] on cuda:0"), outside.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> t.setFloat(-1, 0f));
            // host code that reads the segment directly fails in Java, it does not touch the address
            assertThrows(IndexOutOfBoundsException.class, () -> t.data().get(ValueLayout.JAVA_FLOAT, 0));
            assertThrows(IndexOutOfBoundsException.class, () -> t.slice(1, 2).data().get(ValueLayout.JAVA_FLOAT, 0));
        }
    }

    @Test
    void scopesReturnBlocksToTheCacheAndReusedBlocksAreZeroed() {
        long address;
        try (TensorScope first = TensorScope.shared(gpu)) {
            Tensor t = first.allocate("dirty", DType.F32, 256);
            t.fill(3f);
            address = t.data().address();
        }
        assertEquals(0, gpu.allocator().stats().allocatedBytes());
        assertEquals(1024, gpu.allocator().stats().cachedBytes());
        try (TensorScope second = TensorScope.shared(gpu)) {
            Tensor t = second.allocate("fresh", DType.F32, 200); // same 1 KiB class
            assertEquals(address, t.data().address(), "the cached block is reused");
            assertArrayEquals(new float[200], t.toFloatArray(), "and zero-filled, not the last owner's data");
        }
        assertEquals(1, gpu.memory().mallocs());
        assertEquals(2, gpu.allocator().stats().allocations());
    }

    @Test
    void useAfterCloseFailsNamingTheTensor() {
        Tensor t;
        TensorScope scope = TensorScope.confined(gpu);
        t = scope.ofInts("ids", new int[] {1, 2}, 2);
        scope.close();
        scope.close();
        for (Runnable use : List.<Runnable>of(t::data, t::toIntArray, () -> t.getInt(0), () -> t.copyFrom(new int[2]))) {
            IllegalStateException e = assertThrows(IllegalStateException.class, use::run);
            assertTrue(e.getMessage().contains("'ids'") && e.getMessage().contains("closed"), e.getMessage());
        }
        IllegalStateException late = assertThrows(IllegalStateException.class,
                () -> scope.allocate("late", DType.F32, 1));
        assertTrue(late.getMessage().contains("'late'"), late.getMessage());
    }

    @Test
    void tablesHoldDeviceAddressesInDeviceMemory() {
        try (TensorScope scope = TensorScope.confined(gpu)) {
            Tensor a = scope.allocate("a", DType.F32, 2, 3);
            Tensor b = scope.allocate("b", DType.F32, 2, 3);
            Tensor c = scope.allocate("c", DType.F32, 2, 3);
            TensorTable table = scope.table("w", List.of(a, b));
            table.set(1, c);
            MemorySegment addresses = table.addresses();
            assertEquals(0, addresses.byteSize(), "the table is device memory");
            MemorySegment stored = gpu.memory().region(addresses.address(), 16);
            assertEquals(a.data().address(), stored.getAtIndex(ValueLayout.ADDRESS, 0).address());
            assertEquals(c.data().address(), stored.getAtIndex(ValueLayout.ADDRESS, 1).address());
        }
    }
}
