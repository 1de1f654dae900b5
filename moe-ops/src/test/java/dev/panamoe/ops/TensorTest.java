package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Tensors, scopes and tables: ownership, views, host access, failure after close. */
class TensorTest {
    private static final Backend CPU = CpuBackend.get();

    @Test
    void allocatesZeroedTensorsWithShapeAndDevice() {
        try (TensorScope scope = TensorScope.confined(CPU)) {
            Tensor t = scope.allocate("t", DType.F32, 3, 5);
            assertArrayEquals(new int[] {3, 5}, t.shape());
            assertEquals(15, t.numel());
            assertEquals(60, t.byteSize());
            assertEquals(Device.CPU, t.device());
            assertEquals(0, t.data().address() % 64, "64-byte aligned");
            assertArrayEquals(new float[15], t.toFloatArray());
            assertEquals("'t' f32[3, 5] on cpu", t.describe());
        }
    }

    @Test
    void useAfterCloseFailsNamingTheTensor() {
        Tensor t;
        Tensor view;
        try (TensorScope scope = TensorScope.shared(CPU)) {
            t = scope.allocate("activations", DType.F32, 4, 2);
            view = t.slice(1, 3);
        }
        assertFalse(t.isOpen());
        for (Tensor closed : List.of(t, view)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, closed::data);
            assertTrue(e.getMessage().contains("'activations'") && e.getMessage().contains("closed"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> closed.getFloat(0));
            assertThrows(IllegalStateException.class, closed::toFloatArray);
        }
    }

    @Test
    void closingTwiceIsHarmlessAndAllocatingAfterCloseFails() {
        TensorScope scope = TensorScope.confined(CPU);
        scope.close();
        scope.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> scope.allocate("late", DType.I32, 2));
        assertTrue(e.getMessage().contains("'late'"), e.getMessage());
    }

    @Test
    void viewsShareMemory() {
        try (TensorScope scope = TensorScope.confined(CPU)) {
            Tensor t = scope.ofFloats("t", new float[] {0, 1, 2, 3, 4, 5, 6, 7}, 4, 2);
            Tensor rows = t.slice(1, 3);
            assertArrayEquals(new float[] {2, 3, 4, 5}, rows.toFloatArray());
            rows.setFloat(0, 20);
            assertEquals(20, t.getFloat(2));
            Tensor flat = t.reshape(8);
            assertEquals(20, flat.getFloat(2));
            assertEquals(0, t.slice(4, 4).numel());
            IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> t.reshape(3, 3));
            assertTrue(bad.getMessage().contains("[3, 3]"), bad.getMessage());
        }
    }

    @Test
    void bf16RoundsToNearestEvenAndKeepsNaN() {
        try (TensorScope scope = TensorScope.confined(CPU)) {
            Tensor t = scope.allocate("b", DType.BF16, 4);
            // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
            // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
            t.copyFrom(new float[] {1 + 0x1p-8f, 1 + 3 * 0x1p-8f, -2.5f, Float.NaN});
            float[] back = t.toFloatArray();
            assertEquals(1f, back[0]);
            assertEquals(1 + 0x1p-6f, back[1]);
            assertEquals(-2.5f, back[2]);
            assertTrue(Float.isNaN(back[3]));
            assertEquals(8, t.byteSize());
        }
    }

    @Test
    void tableHoldsTheAddressesOfItsTensors() {
        try (TensorScope scope = TensorScope.confined(CPU)) {
            Tensor a = scope.allocate("a", DType.F32, 2, 3);
            Tensor b = scope.allocate("b", DType.F32, 2, 3);
            TensorTable table = scope.table("w", List.of(a, b));
            assertEquals(a.data().address(), table.addresses().getAtIndex(java.lang.foreign.ValueLayout.ADDRESS, 0).address());
            Tensor c = scope.allocate("c", DType.F32, 2, 3);
            table.set(1, c);
            assertEquals(c.data().address(), table.addresses().getAtIndex(java.lang.foreign.ValueLayout.ADDRESS, 1).address());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> table.set(0, scope.allocate("wrong", DType.F32, 3, 2)));
            assertTrue(e.getMessage().contains("w[0]") && e.getMessage().contains("'wrong'"), e.getMessage());
        }
    }

    @Test
    void devicesPrintAndValidate() {
        assertEquals("cpu", Device.CPU.toString());
        assertEquals("cuda:1", Device.cuda(1).toString());
        assertThrows(IllegalArgumentException.class, () -> Device.cuda(-1));
        assertThrows(IllegalArgumentException.class, () -> new Device(Device.Kind.CPU, 1));
    }
}
