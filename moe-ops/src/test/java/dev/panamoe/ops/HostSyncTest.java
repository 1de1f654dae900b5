package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Where the device backends make the host wait, counted on the emulated CUDA device (the same
 * code paths as CudaBackend, with the CPU kernels): the MoE layer's forward and backward make
 * none, host reads make one each, copies from the host none; the debug mode's value checks do
 * synchronise, and still catch bad ids; fresh tensors are zeroed only when asked.
 */
class HostSyncTest {
    private static final MoELayer.Config CONFIG = MoELayer.Config.builder().hidden(32).ffn(48).experts(6).topK(2)
            .build();

    private static float[][] passes(EmulatedCudaBackend device, MoELayer.Config config, int passes) {
        try (TensorScope scope = TensorScope.shared(device); MoELayer layer = new MoELayer(device, config, 7)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(37, config.hidden(), 1), config.dtype());
            Tensor g = TestData.tensor(scope, "g", TestData.input(37, config.hidden(), 2), config.dtype());
            device.hostSyncs().reset();
            for (int i = 0; i < passes; i++) {
                layer.forward(x);
                layer.backward(g);
            }
            long during = device.hostSyncs().count();
            float[][] out = {layer.workspace().output().toFloatArray(), layer.router().weight().grad().toFloatArray(),
                    layer.experts().w1(3).grad().toFloatArray(), {during}};
            return out;
        }
    }

    @Test
    void moeLayerPassesMakeNoHostSynchronisation() {
        for (MoELayer.Config config : List.of(CONFIG, CONFIG.toBuilder().dtype(DType.BF16).build())) {
            EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 26, false);
            float[][] fast = passes(device, config, 3);
            assertEquals(0, (long) fast[3][0], config.dtype() + ": " + device.hostSyncs());

            EmulatedCudaBackend debug = new EmulatedCudaBackend(1L << 26, true);
            float[][] checked = passes(debug, config, 3);
            // the debug mode reads ids, offsets and inputs on the host: finite checks of x and
            // gradY, the ids twice and the remap once, three grouped GEMMs each way
            assertTrue(checked[3][0] >= 3 * 10, config.dtype() + ": " + debug.hostSyncs());
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(checked[i], fast[i], config.dtype() + ": result " + i + " depends on the checks");
            }
        }
    }

    @Test
    void readsSynchroniseCopiesFromTheHostDoNot() {
        EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 24, false);
        HostSyncs syncs = device.hostSyncs();
        try (TensorScope scope = TensorScope.shared(device)) {
            Tensor a = scope.ofFloats("a", new float[] {1, 2, 3, 4}, 4);
            Tensor b = scope.allocate("b", DType.F32, 4);
            b.copyFrom(new float[] {4, 3, 2, 1});
            assertEquals(0, syncs.count(), syncs.toString());
            device.add(a, b, b);
            assertArrayEquals(new float[] {5, 5, 5, 5}, b.toFloatArray());
            assertEquals(b.getFloat(2), 5f);
            assertEquals(2, syncs.count(), syncs.toString());
            assertEquals(1, syncs.drains(), "the second read finds the stream idle: " + syncs);
            Map<String, Long> sites = syncs.bySite();
            assertEquals(Map.of("copy to host at HostSyncTest.readsSynchroniseCopiesFromTheHostDoNot", 2L), sites);
        }
    }

    /** One read for all the partial sums, and bitwise the per-tensor loop (on the CPU too). */
    @Test
    void sumOfSquaresOfManyTensorsReadsOnce() {
        EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 24, false);
        for (Backend backend : List.<Backend>of(device, CpuBackend.get())) {
            try (TensorScope scope = TensorScope.shared(backend)) {
                List<Tensor> tensors = new ArrayList<>();
                double loop = 0;
                for (int i = 0; i < 9; i++) {
                    Tensor t = TestData.tensor(scope, "t" + i, TestData.input(1 + i, 3 + 2 * i, 10 + i));
                    tensors.add(t);
                    loop += backend.sumSquares(t);
                }
                device.hostSyncs().reset();
                assertEquals(loop, backend.sumSquares(tensors), backend.name());
                assertEquals(backend == device ? 1 : 0, device.hostSyncs().count(), device.hostSyncs().toString());
                assertEquals(0, backend.sumSquares(List.of()));
            }
        }
    }

    @Test
    void freshTensorsAreZeroedOnlyWhenAsked() {
        EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 24, false);
        try (TensorScope scope = TensorScope.shared(device)) {
            Tensor raw = scope.allocateUninitialized("raw", DType.I32, 8);
            int poison = 0x01010101 * (EmulatedDeviceMemory.POISON & 0xff);
            assertArrayEquals(new int[] {poison, poison, poison, poison, poison, poison, poison, poison},
                    raw.toIntArray(), "no memset of a fresh block: it still holds the emulation's poison");
            assertArrayEquals(new int[8], scope.allocate("zeroed", DType.I32, 8).toIntArray());
        }
        // On the CPU a closed scope's block goes back to the host cache and serves the next
        // request of its size class as it is; only allocate zeroes it. (The cache hands out its
        // most recently freed block first: this relies on the tests of this JVM running one at a time.)
        float[] last = {1.5f, -2f, 3.25f};
        try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
            scope.allocate("previous", DType.F32, 3).copyFrom(last);
        }
        try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
            assertArrayEquals(last, scope.allocateUninitialized("host", DType.F32, 3).toFloatArray(),
                    "no memset of a cached block: it still holds its last owner's values");
        }
        try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
            scope.allocate("previous", DType.F32, 3).copyFrom(last);
        }
        try (TensorScope scope = TensorScope.shared(CpuBackend.get())) {
            assertArrayEquals(new float[3], scope.allocate("host", DType.F32, 3).toFloatArray());
        }
    }

    @Test
    void debugModeChecksIdsOnTheHost() {
        for (boolean checks : new boolean[] {true, false}) {
            EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 24, checks);
            assertEquals(checks, device.checksValuesOnHost());
            try (TensorScope scope = TensorScope.shared(device)) {
                Tensor scores = scope.allocate("scores", DType.F32, 2, 4);
                Tensor ids = scope.ofInts("topkIds", new int[] {0, 1, 2, 9}, 2, 2);
                RuntimeException e = assertThrows(RuntimeException.class, () -> device.auxLossForward(scores, ids, 0.01f,
                        scope.allocate("loss", DType.F32, 1), scope.allocate("counts", DType.I32, 4)));
                // without the host check the kernel's own check (the CPU library's here; the CUDA
                // library's in its debug mode) reports it
                assertTrue(e.getMessage().contains(checks ? "topkIds: value 9 at flat index 3"
                        : "topk_ids[3] = 9 is out of range [0, 4)"), e.getMessage());
                assertEquals(checks, e instanceof IllegalArgumentException, e.toString());
            }
        }
        assertFalse(CpuBackend.get().hostSyncs().count() > 0, "the CPU never waits");
    }
}
