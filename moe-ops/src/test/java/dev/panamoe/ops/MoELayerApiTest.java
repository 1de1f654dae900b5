package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The layer's parameters, gradient accumulation, expert replacement, workspaces and configuration. */
class MoELayerApiTest {
    private static final Backend CPU = CpuBackend.get();
    private static final MoELayer.Config CONFIG = MoELayer.Config.builder().hidden(16).ffn(12).experts(4).topK(2)
            .build();

    @Test
    void parametersAreNamedAndShapedPerExpert() {
        try (MoELayer swiglu = new MoELayer(CPU, CONFIG, 1);
                MoELayer gelu = new MoELayer(CPU, CONFIG.toBuilder().activation(Activation.GELU).build(), 1)) {
            List<Parameter> p = swiglu.parameters();
            assertEquals(1 + 2 * 4, p.size());
            assertEquals("router.weight", p.get(0).name());
            assertArrayEquals(new int[] {16, 4}, p.get(0).value().shape());
            assertEquals("experts.2.w1", p.get(5).name());
            assertArrayEquals(new int[] {16, 24}, p.get(5).value().shape(), "SwiGLU W1 is [hidden, 2 * ffn]");
            assertEquals("experts.2.w2", p.get(6).name());
            assertArrayEquals(new int[] {12, 16}, p.get(6).value().shape());
            assertArrayEquals(new int[] {16, 12}, gelu.parameters().get(1).value().shape(), "GeLU W1 is [hidden, ffn]");
            java.util.Set<Long> storage = new java.util.HashSet<>();
            for (Parameter q : p) {
                assertArrayEquals(q.value().shape(), q.grad().shape(), q.name());
                storage.add(q.value().data().address());
                storage.add(q.grad().data().address());
            }
            assertEquals(2 * p.size(), storage.size(), "every value and gradient has its own storage");
        }
    }

    @Test
    void initialisationIsReproducibleFromTheSeed() {
        try (MoELayer a = new MoELayer(CPU, CONFIG, 7); MoELayer b = new MoELayer(CPU, CONFIG, 7);
                MoELayer c = new MoELayer(CPU, CONFIG, 8)) {
            for (int i = 0; i < a.parameters().size(); i++) {
                float[] va = a.parameters().get(i).value().toFloatArray();
                assertArrayEquals(va, b.parameters().get(i).value().toFloatArray());
                assertFalse(java.util.Arrays.equals(va, c.parameters().get(i).value().toFloatArray()));
                double bound = 1 / Math.sqrt(a.parameters().get(i).value().dim(0));
                for (float v : va) {
                    assertTrue(Math.abs(v) <= bound, "uniform in +-1/sqrt(fan_in)");
                }
            }
        }
    }

    @Test
    void gradientsAccumulateUntilZeroed() {
        try (MoELayer layer = new MoELayer(CPU, CONFIG, 2); TensorScope scope = TensorScope.confined(CPU)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(10, 16, 1));
            Tensor g = TestData.tensor(scope, "g", TestData.input(10, 16, 2));
            layer.forward(x);
            layer.backward(g);
            List<float[]> once = layer.parameters().stream().map(p -> p.grad().toFloatArray()).toList();
            layer.forward(x);
            layer.backward(g);
            for (int i = 0; i < once.size(); i++) {
                float[] twice = layer.parameters().get(i).grad().toFloatArray();
                float[] expected = once.get(i).clone();
                for (int j = 0; j < expected.length; j++) {
                    expected[j] *= 2; // g + g == 2g exactly in floating point
                }
                assertArrayEquals(expected, twice, layer.parameters().get(i).name());
            }
            assertTrue(maxAbs(once.get(0)) > 0, "gate gradient is non-zero");
            layer.zeroGrad();
            for (Parameter p : layer.parameters()) {
                assertEquals(0, maxAbs(p.grad().toFloatArray()), p.name());
            }
        }
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(value = DType.class, names = {"F32", "BF16"})
    void discardedGradientsAreWrittenByTheNextBackward(DType dtype) {
        // 8 experts, one token, top-2: six experts get no rows, so their groups are empty
        MoELayer.Config config = CONFIG.toBuilder().experts(8).dtype(dtype).build();
        try (MoELayer layer = new MoELayer(CPU, config, 4); TensorScope scope = TensorScope.confined(CPU)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(1, 16, 1), dtype);
            Tensor g = TestData.tensor(scope, "g", TestData.input(1, 16, 2), dtype);
            layer.zeroGrad();
            layer.forward(x);
            layer.backward(g);
            List<float[]> zeroedFirst = layer.parameters().stream().map(p -> p.grad().toFloatArray()).toList();
            long written = zeroedFirst.stream().skip(1).filter(v -> maxAbs(v) > 0).count();
            assertTrue(written > 0 && written < 2 * 8, "some experts have gradients, some none: " + written);

            layer.parameters().forEach(p -> p.grad().fill(Float.NaN)); // stale contents
            layer.discardGradients();
            layer.forward(x);
            layer.backward(g);
            layer.forward(x);
            layer.backward(g); // the second backward adds
            for (int i = 0; i < zeroedFirst.size(); i++) {
                float[] expected = zeroedFirst.get(i).clone();
                for (int j = 0; j < expected.length; j++) {
                    expected[j] *= 2;
                }
                String name = dtype + " " + layer.parameters().get(i).name();
                float[] got = layer.parameters().get(i).grad().toFloatArray();
                for (int j = 0; j < expected.length; j++) {
                    assertEquals(expected[j], got[j], 0f, name + " element " + j); // +0 and -0 compare equal
                }
            }

            layer.parameters().forEach(p -> p.grad().fill(Float.NaN));
            layer.discardGradients();
            layer.experts().backwardWithoutRows(); // a rank that received no rows adds nothing
            for (Parameter p : layer.experts().parameters()) {
                assertEquals(0, maxAbs(p.grad().toFloatArray()), p.name() + " after a backward without rows");
            }
            assertEquals(0, maxAbs(layer.router().weight().grad().toFloatArray()), "the router's is zeroed at once");
        }
    }

    @Test
    void replacedExpertComputesTheSameAndReceivesTheGradients() {
        try (MoELayer layer = new MoELayer(CPU, CONFIG, 3); TensorScope scope = TensorScope.confined(CPU);
                TensorScope migrated = TensorScope.shared(CPU)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(12, 16, 1));
            Tensor g = TestData.tensor(scope, "g", TestData.input(12, 16, 2));
            float[] before = layer.forward(x).toFloatArray();
            float[] gradXBefore = layer.backward(g).toFloatArray();
            float[] w1GradBefore = layer.experts().w1(2).grad().toFloatArray();

            Parameter oldW1 = layer.experts().w1(2);
            Parameter w1 = Parameter.allocate(migrated, "experts.2.w1", 16, 24);
            Parameter w2 = Parameter.allocate(migrated, "experts.2.w2", 12, 16);
            w1.value().copyFrom(oldW1.value());
            w2.value().copyFrom(layer.experts().w2(2).value());
            layer.experts().setExpert(2, w1, w2);
            layer.zeroGrad();

            assertArrayEquals(before, layer.forward(x).toFloatArray(), "same weights, new storage: same output");
            assertArrayEquals(gradXBefore, layer.backward(g).toFloatArray());
            assertArrayEquals(w1GradBefore, w1.grad().toFloatArray(), "the new expert's gradient");
            assertTrue(maxAbs(w1GradBefore) > 0);
            assertArrayEquals(w1GradBefore, oldW1.grad().toFloatArray(), "the old storage is no longer written");
            assertEquals(w1, layer.parameters().get(5));
        }
    }

    @Test
    void separateWorkspacesHoldSeparatePasses() {
        try (MoELayer layer = new MoELayer(CPU, CONFIG, 4); TensorScope scope = TensorScope.confined(CPU);
                MoELayer.Workspace a = layer.newWorkspace(); MoELayer.Workspace b = layer.newWorkspace()) {
            Tensor x1 = TestData.tensor(scope, "x1", TestData.input(9, 16, 1));
            Tensor x2 = TestData.tensor(scope, "x2", TestData.input(9, 16, 2));
            Tensor g1 = TestData.tensor(scope, "g1", TestData.input(9, 16, 3));
            Tensor g2 = TestData.tensor(scope, "g2", TestData.input(9, 16, 4));
            float[] y1 = layer.forward(x1).toFloatArray();
            float[] dx1 = layer.backward(g1).toFloatArray();
            float[] y2 = layer.forward(x2).toFloatArray();
            float[] dx2 = layer.backward(g2).toFloatArray();

            // two micro-batches in flight: forward, forward, backward, backward
            assertArrayEquals(y1, layer.forward(x1, a).toFloatArray());
            assertArrayEquals(y2, layer.forward(x2, b).toFloatArray());
            assertArrayEquals(dx1, layer.backward(g1, 1f, a).toFloatArray());
            assertArrayEquals(dx2, layer.backward(g2, 1f, b).toFloatArray());
            assertEquals(9, a.tokens());
        }
    }

    /**
     * On one device too, a placement change moves the experts' state through the loader: with
     * the experts permuted among the slots and their values moved along, the layer computes the
     * same outputs and gradients, and its parameters are named after the experts they hold.
     */
    @Test
    void placementChangeWithMovedStateComputesTheSame() {
        try (MoELayer layer = new MoELayer(CPU, CONFIG, 5); TensorScope scope = TensorScope.confined(CPU)) {
            Tensor x = TestData.tensor(scope, "x", TestData.input(11, 16, 1));
            Tensor g = TestData.tensor(scope, "g", TestData.input(11, 16, 2));
            float[] y = layer.forward(x).toFloatArray();
            float[] dx = layer.backward(g).toFloatArray();
            java.util.Map<String, float[]> values = new java.util.HashMap<>();
            java.util.Map<String, float[]> grads = new java.util.HashMap<>();
            for (Parameter p : layer.parameters()) {
                values.put(p.name(), p.value().toFloatArray());
                grads.put(p.name(), p.grad().toFloatArray());
            }
            int[] table = {2, 0, 3, 1}; // slot -> expert
            ExpertSlots next = new ExpertSlots() {
                public int experts() { return 4; }
                public int devices() { return 1; }
                public int slotsPerDevice() { return 4; }
                public int expertAt(int slot) { return table[slot]; }
                public int[] slotsOf(int e) { return new int[] {new int[] {1, 3, 0, 2}[e]}; }
            };
            assertArrayEquals(new int[] {0, 1, 2, 3}, layer.changedSlots(next));
            var refused = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                    () -> layer.setPlacement(next));
            assertTrue(refused.getMessage().contains("applyPlacement"), refused.getMessage());
            layer.applyPlacement(next, (slot, e, w1, w2) -> {
                w1.value().copyFrom(values.get(w1.name()));
                w2.value().copyFrom(values.get(w2.name()));
            });
            assertArrayEquals(table, layer.localExperts());
            assertEquals("experts.2.w1", layer.parameters().get(1).name(), "slot 0 holds expert 2");
            layer.zeroGrad();
            assertArrayEquals(y, layer.forward(x).toFloatArray());
            assertArrayEquals(dx, layer.backward(g).toFloatArray());
            for (Parameter p : layer.parameters()) {
                assertArrayEquals(grads.get(p.name()), p.grad().toFloatArray(), p.name());
            }
            var remap = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> layer.setRemap(TestData.identity(4)));
            assertTrue(remap.getMessage().startsWith("setRemap: only for a one-device layer with expert e in slot e"),
                    remap.getMessage());
        }
    }

    @Test
    void configDefaultsAndCapacity() {
        MoELayer.Config c = MoELayer.Config.builder().hidden(8).ffn(4).experts(4).topK(2).build();
        assertEquals(Activation.SWIGLU, c.activation());
        assertEquals(ScoreFunction.SOFTMAX, c.scoreFunction());
        assertTrue(c.renormalize());
        assertTrue(c.dropless());
        assertEquals(c, c.toBuilder().build());
        assertFalse(c.toBuilder().capacityFactor(1.0).build().dropless());
        try (TensorScope scope = TensorScope.confined(CPU)) {
            Dispatcher d = new Dispatcher(CPU, scope, 4, 4, 2, 1.25, DropPolicy.BY_POSITION);
            assertEquals(7, d.capacity(10), "ceil(10 * 2 * 1.25 / 4)");
            assertEquals(1, d.capacity(1), "ceil(0.625)");
            assertEquals(20, new Dispatcher(CPU, scope, 4, 4, 2, 100, DropPolicy.BY_POSITION).capacity(10),
                    "never more than tokens * k");
            assertEquals(Backend.CAPACITY_DROPLESS,
                    new Dispatcher(CPU, scope, 4, 4, 2, Dispatcher.DROPLESS, DropPolicy.BY_POSITION).capacity(10));
        }
    }

    private static double maxAbs(float[] v) {
        double m = 0;
        for (float f : v) {
            m = Math.max(m, Math.abs(f));
        }
        return m;
    }
}
