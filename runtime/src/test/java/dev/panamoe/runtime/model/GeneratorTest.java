package dev.panamoe.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

class GeneratorTest {

    /** Dense and MoE blocks; LayerNorm and RMSNorm; tied and untied heads; GeLU and SwiGLU experts. */
    static Stream<GptMoeConfig> configs() {
        GptMoeConfig.Builder base = GptMoeConfig.builder().vocab(37).maxSeq(12).layers(3).hidden(16).heads(4)
                .experts(4).topK(2).expertFfn(12).denseFfn(20);
        return Stream.of(base.moeEvery(2).build(),
                base.moeEvery(1).norm(Norm.RMS).tiedEmbeddings(false).expertActivation(Activation.SWIGLU).topK(1)
                        .build());
    }

    /** Every parameter random (biases and norm weights too), larger than the initialisation's, so that every term shows. */
    private static GptMoeModel randomModel(GptMoeConfig config, long seed) {
        GptMoeModel model = new GptMoeModel(CpuBackend.get(), config, seed);
        SplittableRandom rng = new SplittableRandom(seed);
        for (Parameter p : model.parameters()) {
            float[] v = new float[Math.toIntExact(p.value().numel())];
            boolean norm = p.name().contains("ln") && p.name().endsWith(".weight");
            for (int i = 0; i < v.length; i++) {
                v[i] = (norm ? 1f : 0f) + (float) (0.3 * rng.nextGaussian());
            }
            p.value().copyFrom(v);
        }
        return model;
    }

    /** logits[t] of a full forward over ids (one sequence): what position t predicts. */
    private static float[][] fullForward(GptMoeModel model, int[] ids) {
        int[] none = new int[ids.length];
        Arrays.fill(none, -1);
        model.forward(ids, none, 1, ids.length);
        float[] flat = model.logits().toFloatArray();
        int vocab = model.config().vocab();
        float[][] rows = new float[ids.length][];
        for (int t = 0; t < ids.length; t++) {
            rows[t] = Arrays.copyOfRange(flat, t * vocab, (t + 1) * vocab);
        }
        return rows;
    }

    @ParameterizedTest
    @MethodSource("configs")
    void cachedDecodingGivesTheFullForwardsLogitsAtEveryPosition(GptMoeConfig config) {
        try (GptMoeModel model = randomModel(config, 7); Generator generator = new Generator(model)) {
            int[] ids = new SplittableRandom(3).ints(config.maxSeq(), 0, config.vocab()).toArray();
            float[][] full = fullForward(model, ids);
            float scale = 0;
            for (int t = 0; t < ids.length; t++) {
                float[] cached = generator.append(ids[t]);
                assertEquals(t + 1, generator.position());
                for (int v = 0; v < cached.length; v++) {
                    scale = Math.max(scale, Math.abs(full[t][v]));
                    assertEquals(full[t][v], cached[v], 2e-5f * Math.max(1f, Math.abs(full[t][v])),
                            "position " + t + ", token " + v);
                }
            }
            assertTrue(scale > 1f, "logits large enough to compare: " + scale);
            // The model's own activations still hold the full forward (decoding has its own buffers).
            float[] held = model.logits().toFloatArray();
            int vocab = config.vocab();
            assertArrayEquals(full[ids.length - 1], Arrays.copyOfRange(held, (ids.length - 1) * vocab, ids.length * vocab));
            // A reset cache decodes the same prefix the same, bit for bit.
            float[] first = null;
            generator.reset();
            for (int t = 0; t < 5; t++) {
                first = generator.append(ids[t]);
            }
            generator.reset();
            float[] again = null;
            for (int t = 0; t < 5; t++) {
                again = generator.append(ids[t]);
            }
            assertArrayEquals(first, again);
            int full0 = ids.length;
            RuntimeException e = assertThrows(IllegalStateException.class, () -> {
                for (int t = generator.position(); t <= full0; t++) {
                    generator.append(0);
                }
            });
            assertTrue(e.getMessage().contains("all " + config.maxSeq() + " positions"), e.getMessage());
            generator.reset();
            e = assertThrows(IllegalArgumentException.class, () -> generator.append(config.vocab()));
            assertTrue(e.getMessage().startsWith("token: " + config.vocab()), e.getMessage());
        }
    }

    @Test
    void greedyDecodingFollowsTheFullForwardsArgmaxAndIsDeterministic() {
        GptMoeConfig config = configs().findFirst().orElseThrow();
        try (GptMoeModel model = randomModel(config, 11); Generator generator = new Generator(model)) {
            int[] prompt = {5, 9, 2};
            int[] greedy = generator.generate(prompt, config.maxSeq() - prompt.length, Generator.Sampling.greedy(),
                    t -> { });
            int[] sequence = Arrays.copyOf(prompt, config.maxSeq());
            System.arraycopy(greedy, 0, sequence, prompt.length, greedy.length);
            for (int i = 0; i < greedy.length; i++) {
                int end = prompt.length + i;
                float[] last = fullForward(model, Arrays.copyOf(sequence, end))[end - 1];
                assertEquals(Generator.argmax(last), greedy[i], "token " + i);
            }
            // top-k 1 at any temperature is greedy too
            assertArrayEquals(greedy, generator.generate(prompt, greedy.length, new Generator.Sampling(2.0, 1, 99),
                    t -> { }));
        }
    }

    @Test
    void seededSamplingRepeatsAndRunsPastTheCachesCapacity() {
        GptMoeConfig config = configs().findFirst().orElseThrow();
        try (GptMoeModel model = randomModel(config, 5); Generator generator = new Generator(model)) {
            int count = 3 * config.maxSeq();
            Generator.Sampling sampling = new Generator.Sampling(1.0, 0, 42);
            int[] seen = new int[count];
            int[] n = {0};
            int[] a = generator.generate(new int[] {1}, count, sampling, t -> seen[n[0]++] = t);
            assertEquals(count, a.length);
            assertArrayEquals(a, seen, "each token is passed on as it is drawn");
            assertArrayEquals(a, generator.generate(new int[] {1}, count, sampling, t -> { }));
            int[] other = generator.generate(new int[] {1}, count, new Generator.Sampling(1.0, 0, 43), t -> { });
            assertFalse(Arrays.equals(a, other), "another seed draws other tokens");
            assertTrue(generator.position() <= generator.capacity());
            // A prompt longer than the cache keeps its last capacity tokens.
            int[] longPrompt = new SplittableRandom(1).ints(config.maxSeq() + 5, 0, config.vocab()).toArray();
            assertEquals(4, generator.generate(longPrompt, 4, sampling, t -> { }).length);
        }
    }

    @Test
    void topKDrawsOnlyAmongTheKMostLikelyInProportion() {
        float[] logits = {0f, 3f, -1f, 3.5f, 2f, 3f};
        Set<Integer> drawn = new HashSet<>();
        int[] counts = new int[logits.length];
        SplittableRandom random = new SplittableRandom(1);
        Generator.Sampling top3 = new Generator.Sampling(1.0, 3, 0);
        for (int i = 0; i < 20_000; i++) {
            int t = Generator.sample(logits, top3, random);
            drawn.add(t);
            counts[t]++;
        }
        assertEquals(Set.of(1, 3, 5), drawn, "ids 1, 3 and 5 hold the three largest logits");
        double expected = Math.exp(3.5) / (Math.exp(3.5) + 2 * Math.exp(3));
        assertEquals(expected, counts[3] / 20_000.0, 0.015);
        // Ties at the cut keep the lower id.
        for (int i = 0; i < 200; i++) {
            int t = Generator.sample(logits, new Generator.Sampling(1.0, 2, 0), random);
            assertTrue(t == 3 || t == 1, "top-2 is {3, 1}, got " + t);
        }
        assertEquals(3, Generator.sample(logits, new Generator.Sampling(0, 0, 0), random), "temperature 0 is greedy");
        var e = assertThrows(IllegalArgumentException.class, () -> new Generator.Sampling(-1, 0, 0));
        assertTrue(e.getMessage().startsWith("temperature:"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Generator.Sampling(1, -2, 0));
        assertTrue(e.getMessage().startsWith("topK:"), e.getMessage());
    }
}
