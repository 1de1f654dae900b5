package dev.panamoe.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.bindings.NativeCallException;
import java.lang.reflect.Proxy;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Randomly malformed calls — wrong shapes, dtypes and devices, out-of-range ids and remap
 * entries, non-finite inputs, closed tensors, bad configurations — each end in the specific
 * exception the API promises, with a message that names the offending argument. Java rejects
 * what it can see before any native call; what only the kernel checks (the contents of plan
 * and offset tensors) comes back as NativeCallException with the kernel's message.
 */
class BadInputTest {
    private static final Backend CPU = CpuBackend.get();
    private static final int CALLS = 1200;
    private static final int HIDDEN = 16;
    private static final int EXPERTS = 4;
    private static final MoELayer.Config CONFIG = MoELayer.Config.builder().hidden(HIDDEN).ffn(8).experts(EXPERTS)
            .topK(2).build();

    /** A backend on "cuda:0" with host memory and no kernels: enough to make tensors of another device. */
    private static final Backend FAKE_GPU = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(),
            new Class<?>[] {Backend.class}, (proxy, method, args) -> switch (method.getName()) {
                case "device" -> Device.cuda(0);
                case "openMemory" -> CpuBackend.get().openMemory(true);
                case "name" -> "fake-gpu";
                default -> throw new UnsupportedOperationException(method.getName());
            });
    /** Where the "remote" tensors live: open for the whole test, as the calls run after their generator. */
    private static final TensorScope FAKE_GPU_SCOPE = TensorScope.shared(FAKE_GPU);

    @AfterAll
    static void closeFakeGpuScope() {
        FAKE_GPU_SCOPE.close();
    }

    /** One malformed call: what it does wrong, the exception it must raise, a word its message must contain. */
    record Bad(String what, Class<? extends RuntimeException> type, String mentions, Executable call) {
    }

    /** What a generator draws from: the shared layer, a scope closed after the call, randomness. */
    record Env(MoELayer layer, TensorScope scope, SplittableRandom rng, int index) {
        int tokens() {
            return 1 + rng.nextInt(8);
        }

        Tensor floats(String name, int... shape) {
            Tensor t = scope.allocate(name, DType.F32, shape);
            float[] v = new float[Math.toIntExact(t.numel())];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) rng.nextDouble(-1, 1);
            }
            t.copyFrom(v);
            return t;
        }

        Tensor ints(String name, int[] values, int... shape) {
            return scope.ofInts(name, values, shape);
        }

        /** A valid routing of `tokens` tokens: k distinct experts each. */
        Tensor topkIds(int tokens, int k, int experts) {
            int[] ids = new int[tokens * k];
            for (int t = 0; t < tokens; t++) {
                int first = rng.nextInt(experts);
                for (int j = 0; j < k; j++) {
                    ids[t * k + j] = (first + j) % experts;
                }
            }
            return ints("topkIds", ids, tokens, k);
        }

        int outside(int bound) {
            return rng.nextBoolean() ? -1 - rng.nextInt(1000) : bound + rng.nextInt(1000);
        }

        float nonFinite() {
            return switch (rng.nextInt(3)) {
                case 0 -> Float.NaN;
                case 1 -> Float.POSITIVE_INFINITY;
                default -> Float.NEGATIVE_INFINITY;
            };
        }
    }

    private static Bad iae(String what, String mentions, Executable call) {
        return new Bad(what, IllegalArgumentException.class, mentions, call);
    }

    private static final List<Function<Env, Bad>> GENERATORS = List.of(
            // ---- MoELayer.forward / backward ----
            env -> {
                int h = env.rng().nextBoolean() ? HIDDEN + 1 + env.rng().nextInt(8) : 1 + env.rng().nextInt(HIDDEN - 1);
                Tensor x = env.floats("x", env.tokens(), h);
                return iae("x with hidden " + h, "x: expected shape [*, " + HIDDEN + "]", () -> env.layer().forward(x));
            },
            env -> {
                int t = env.tokens();
                int[][] shapes = {{t * HIDDEN}, {t, HIDDEN, 1}, {1, t, HIDDEN}};
                Tensor x = env.floats("x", shapes[env.rng().nextInt(3)]);
                return iae("x of rank " + x.rank(), "x: expected shape", () -> env.layer().forward(x));
            },
            env -> {
                DType d = env.rng().nextBoolean() ? DType.BF16 : DType.I32;
                Tensor x = env.scope().allocate("x", d, env.tokens(), HIDDEN);
                return iae("x of dtype " + d, "x: expected dtype f32", () -> env.layer().forward(x));
            },
            env -> {
                Tensor x = env.floats("x", env.tokens(), HIDDEN);
                x.setFloat(env.rng().nextLong(x.numel()), env.nonFinite());
                return iae("x with a NaN/Inf", "x: non-finite value", () -> env.layer().forward(x));
            },
            env -> {
                String name = "input" + env.index();
                Tensor x;
                try (TensorScope gone = TensorScope.confined(CPU)) {
                    x = gone.allocate(name, DType.F32, env.tokens(), HIDDEN);
                }
                return new Bad("closed x", IllegalStateException.class, "'" + name + "'", () -> env.layer().forward(x));
            },
            env -> iae("null x", "x: must not be null", () -> env.layer().forward(null)),
            env -> {
                Tensor x = env.floats("x", 0, HIDDEN);
                return iae("x with no tokens", "x: expected at least one token", () -> env.layer().forward(x));
            },
            env -> {
                int t = env.tokens();
                env.layer().forward(env.floats("x", t, HIDDEN));
                int[] shape = env.rng().nextBoolean() ? new int[] {t + 1 + env.rng().nextInt(4), HIDDEN}
                        : new int[] {t, HIDDEN + 1 + env.rng().nextInt(4)};
                Tensor gradY = env.floats("gradY", shape);
                return iae("gradY " + Arrays.toString(shape) + " after " + t + " tokens", "gradY: expected shape",
                        () -> env.layer().backward(gradY));
            },
            env -> {
                int t = env.tokens();
                env.layer().forward(env.floats("x", t, HIDDEN));
                Tensor gradY = env.floats("gradY", t, HIDDEN);
                gradY.setFloat(env.rng().nextLong(gradY.numel()), env.nonFinite());
                return iae("gradY with a NaN/Inf", "gradY: non-finite value", () -> env.layer().backward(gradY));
            },
            env -> {
                Tensor gradY = env.floats("gradY", env.tokens(), HIDDEN);
                return new Bad("backward before forward", IllegalStateException.class, "backward", () -> {
                    try (MoELayer.Workspace fresh = env.layer().newWorkspace()) {
                        env.layer().backward(gradY, 1f, fresh);
                    }
                });
            },
            // ---- configuration and placement ----
            env -> {
                int experts = 1 + env.rng().nextInt(8);
                int k = env.rng().nextBoolean() ? experts + 1 + env.rng().nextInt(4) : -env.rng().nextInt(3);
                return iae("topK " + k + " of " + experts + " experts", "topK",
                        () -> CONFIG.toBuilder().experts(experts).topK(k).build());
            },
            env -> {
                double[] bad = {0, -env.rng().nextDouble(10), Double.NaN, Double.NEGATIVE_INFINITY};
                double cf = bad[env.rng().nextInt(bad.length)];
                return iae("capacity factor " + cf, "capacityFactor", () -> CONFIG.toBuilder().capacityFactor(cf).build());
            },
            env -> {
                int v = -env.rng().nextInt(3);
                return switch (env.rng().nextInt(3)) {
                    case 0 -> iae("hidden " + v, "hidden", () -> CONFIG.toBuilder().hidden(v).build());
                    case 1 -> iae("ffn " + v, "ffn", () -> CONFIG.toBuilder().ffn(v).build());
                    default -> iae("experts " + v, "experts", () -> CONFIG.toBuilder().experts(v).topK(1).build());
                };
            },
            env -> {
                float[] bad = {-env.rng().nextFloat() - 1e-3f, Float.NaN, Float.POSITIVE_INFINITY};
                float c = bad[env.rng().nextInt(bad.length)];
                return env.rng().nextBoolean() ? iae("aux coefficient " + c, "auxLossCoeff", () -> CONFIG.toBuilder().auxLossCoeff(c).build())
                        : iae("z coefficient " + c, "zLossCoeff", () -> CONFIG.toBuilder().zLossCoeff(c).build());
            },
            env -> {
                int[] remap = TestData.identity(EXPERTS);
                int i = env.rng().nextInt(EXPERTS);
                remap[i] = env.outside(EXPERTS);
                return iae("remap entry " + remap[i], "remap[" + i + "]", () -> env.layer().setRemap(remap));
            },
            env -> {
                int[] remap = TestData.identity(EXPERTS);
                int i = 1 + env.rng().nextInt(EXPERTS - 1);
                remap[i] = remap[env.rng().nextInt(i)];
                return iae("repeated remap entry", "remap[" + i + "]", () -> env.layer().setRemap(remap));
            },
            env -> {
                int n = env.rng().nextBoolean() ? EXPERTS + 1 + env.rng().nextInt(3) : env.rng().nextInt(EXPERTS);
                return iae("remap of length " + n, "remap: expected " + EXPERTS + " entries",
                        () -> env.layer().setRemap(TestData.identity(n)));
            },
            // ---- backend kernels ----
            env -> {
                int m = env.tokens();
                int k = 1 + env.rng().nextInt(8);
                int n = 1 + env.rng().nextInt(8);
                Tensor a = env.floats("a", m, k);
                Tensor b = env.floats("b", k + 1 + env.rng().nextInt(3), n);
                Tensor c = env.floats("c", m, n);
                return iae("gemm with mismatched inner size", "b: expected shape", () -> CPU.gemm(false, false, 1f, a, b, 0f, c));
            },
            env -> {
                int m = env.tokens();
                Tensor a = env.scope().allocate("a", DType.BF16, m, 4);
                Tensor b = env.floats("b", 4, 3);
                return iae("bf16 gemm with an f32 b", "b: expected dtype bf16",
                        () -> CPU.gemm(false, env.rng().nextBoolean(), 1f, a, b, 0f, env.floats("c", m, 3)));
            },
            env -> {
                int m = env.tokens();
                Tensor c = env.scope().allocate("c", DType.BF16, m, 3);
                return iae("f32 gemm into a bf16 c", "c: expected dtype f32",
                        () -> CPU.gemm(false, false, 1f, env.floats("a", m, 4), env.floats("b", 4, 3), 0f, c));
            },
            env -> {
                int rows = env.tokens();
                Tensor a = env.scope().allocate("a", DType.BF16, rows, 4);
                TensorTable weights = env.scope().table("weights", List.of(env.floats("w", 3, 4)));
                return iae("bf16 grouped nt with f32 weights", "weights: expected dtype bf16",
                        () -> CPU.groupedGemmNt(env.ints("offsets", new int[] {0, rows}, 2), a, weights,
                                env.scope().allocate("c", DType.BF16, rows, 3)));
            },
            env -> {
                int rows = env.tokens();
                Tensor a = env.scope().allocate("a", DType.BF16, rows, 4);
                Tensor b = env.scope().allocate("b", DType.BF16, rows, 3);
                int wrong = 4 + 1 + env.rng().nextInt(3);
                TensorTable out = env.scope().table("out", List.of(env.floats("g", wrong, 3)));
                return iae("bf16 grouped tn into gradients of the wrong shape", "out: expected entries of shape [4, 3]",
                        () -> CPU.groupedGemmTn(env.ints("offsets", new int[] {0, rows}, 2), a, b, 1f, out));
            },
            env -> {
                int t = env.tokens();
                Tensor ids = env.topkIds(t, 2, EXPERTS);
                int bad = env.outside(EXPERTS);
                ids.setInt(env.rng().nextLong(ids.numel()), bad);
                DispatchPlan plan = new DispatchPlan(env.scope(), t, 2, EXPERTS);
                return iae("expert id " + bad, "topkIds: value " + bad, () -> CPU.dispatchPlan(ids, env.floats("w", t, 2), null,
                        EXPERTS, Backend.CAPACITY_DROPLESS, DropPolicy.BY_POSITION, plan.expertCounts(), plan.expertOffsets(),
                        plan.slotPosition(), plan.sortedSlot()));
            },
            env -> {
                int t = env.tokens();
                int physical = EXPERTS + env.rng().nextInt(3);
                int[] table = TestData.identity(EXPERTS);
                table[env.rng().nextInt(EXPERTS)] = env.outside(physical);
                Tensor remap = env.ints("remap", table, EXPERTS);
                DispatchPlan plan = new DispatchPlan(env.scope(), t, 2, physical);
                return iae("remap tensor entry outside " + physical, "remap: value", () -> CPU.dispatchPlan(
                        env.topkIds(t, 2, EXPERTS), env.floats("w", t, 2), remap, EXPERTS, 1 + env.rng().nextInt(4),
                        DropPolicy.BY_PROBABILITY, plan.expertCounts(), plan.expertOffsets(), plan.slotPosition(),
                        plan.sortedSlot()));
            },
            env -> {
                int t = env.tokens();
                int k = EXPERTS + 1 + env.rng().nextInt(3);
                Tensor logits = env.floats("logits", t, EXPERTS);
                return iae("router top-" + k + " of " + EXPERTS, "topK: must be in [1, " + EXPERTS + "]",
                        () -> CPU.routerForward(ScoreFunction.SOFTMAX, true, logits, env.floats("scores", t, EXPERTS),
                                env.floats("w", t, k), env.scope().allocate("ids", DType.I32, t, k)));
            },
            env -> {
                int t = env.tokens();
                Tensor logits = env.floats("logits", t, EXPERTS);
                logits.setFloat(env.rng().nextLong(logits.numel()), env.nonFinite());
                return new Bad("router on NaN/Inf logits", NativeCallException.class, "logits[",
                        () -> CPU.routerForward(ScoreFunction.SIGMOID, false, logits, env.floats("scores", t, EXPERTS),
                                env.floats("w", t, 2), env.scope().allocate("ids", DType.I32, t, 2)));
            },
            env -> {
                int rows = 2 + env.rng().nextInt(8);
                int[] offsets = {0, rows / 2, rows + 1 + env.rng().nextInt(5)};
                return iae("grouped GEMM groups past the rows", "offsets: last offset",
                        () -> groupedGemm(env, rows, offsets));
            },
            env -> {
                int rows = 4 + env.rng().nextInt(8);
                boolean badStart = env.rng().nextBoolean();
                int[] offsets = badStart ? new int[] {1 + env.rng().nextInt(2), rows - 1, rows} : new int[] {0, rows - 1, 1, rows};
                return new Bad("grouped GEMM offsets " + Arrays.toString(offsets), NativeCallException.class,
                        badStart ? "offsets[0]" : "offsets must not decrease", () -> groupedGemm(env, rows, offsets));
            },
            env -> {
                int t = env.tokens();
                int rows = t * 2;
                int[] slots = TestData.identity(rows);
                slots[env.rng().nextInt(rows)] = rows + env.rng().nextInt(100);
                Tensor x = env.floats("x", t, HIDDEN);
                return new Bad("permute with a slot past tokens * k", NativeCallException.class, "sorted_slot[",
                        () -> CPU.permute(x, env.ints("sortedSlot", slots, rows), 2, env.floats("out", rows, HIDDEN)));
            },
            env -> {
                int t = env.tokens();
                int rows = t * 2;
                int[] positions = TestData.identity(rows);
                positions[env.rng().nextInt(rows)] = rows + env.rng().nextInt(100);
                Tensor slotPosition = env.ints("slotPosition", positions, t, 2);
                return new Bad("combine with a row past the buffer", NativeCallException.class, "slot_position[",
                        () -> CPU.combine(env.floats("expertOut", rows, HIDDEN), env.floats("w", t, 2), slotPosition,
                                env.floats("y", t, HIDDEN)));
            },
            env -> {
                int rows = env.tokens();
                int cols = 1 + env.rng().nextInt(8);
                boolean swiglu = env.rng().nextBoolean();
                Tensor in = env.floats("in", rows, swiglu ? cols : cols + 1);
                return iae("activation input of the wrong width", "in: expected shape",
                        () -> CPU.activationForward(swiglu ? Activation.SWIGLU : Activation.GELU, in,
                                env.floats("out", rows, cols)));
            },
            env -> {
                Tensor elsewhere = FAKE_GPU_SCOPE.allocate("remote", DType.F32, 2, 2);
                Tensor local = env.floats("local", 2, 2);
                return iae("a tensor of another device", "expected a tensor on cpu",
                        () -> CPU.gemm(false, false, 1f, local, elsewhere, 0f, env.floats("c", 2, 2)));
            },
            env -> {
                String name = "weights" + env.index();
                TensorTable table;
                try (TensorScope gone = TensorScope.confined(CPU)) {
                    table = env.scope().table("w", List.of(gone.allocate(name, DType.F32, 4, 3)));
                }
                TensorTable closedEntry = table;
                return new Bad("a closed expert weight", IllegalStateException.class, "'" + name + "'",
                        () -> CPU.groupedGemmNn(env.ints("offsets", new int[] {0, 2}, 2), env.floats("a", 2, 4),
                                closedEntry, env.floats("c", 2, 3)));
            },
            env -> {
                Tensor counts = env.scope().allocate("counts", DType.I32, EXPERTS + 1 + env.rng().nextInt(3));
                return iae("aux loss counts of the wrong size", "expertCounts: expected shape",
                        () -> CPU.auxLossBackward(2, counts, 0.1f, 1f, env.floats("gradScores", env.tokens(), EXPERTS)));
            },
            env -> {
                int t = env.tokens();
                Tensor out = env.scope().allocate("out", DType.BF16, t, HIDDEN);
                return iae("permute into another dtype", "out: expected dtype", () -> CPU.permute(
                        env.floats("x", t, HIDDEN), env.ints("slots", TestData.identity(t), t), 1, out));
            },
            env -> {
                Tensor ids = env.scope().allocate("ids", DType.I32, env.tokens());
                return iae("non-finite scan of an i32 tensor", "x: expected dtype f32 or bf16", () -> CPU.findNonFinite(ids));
            },
            env -> {
                int n = -env.rng().nextInt(5);
                return iae("thread count " + n, "n: must be >= 1", () -> CPU.setNumThreads(n));
            },
            env -> {
                int rows = 1 + env.rng().nextInt(6);
                Tensor in = env.scope().allocate("in", DType.BF16, rows, 8);
                return iae("bf16 activation into an f32 output", "in: expected dtype f32, got bf16",
                        () -> CPU.activationForward(Activation.GELU, in, env.floats("out", rows, 8)));
            },
            env -> {
                Tensor src = env.floats("src", 3, 1 + env.rng().nextInt(4));
                Tensor dst = env.scope().allocate("dst", DType.BF16, 3, 5);
                return iae("conversion between sizes", "dst: expected " + src.numel() + " elements",
                        () -> CPU.convert(src, dst));
            },
            env -> {
                Tensor ints = env.ints("ids", new int[] {1, 2}, 2);
                return iae("conversion of i32", "src: expected dtype f32 or bf16, got i32",
                        () -> CPU.convert(ints, env.floats("dst", 2)));
            },
            env -> {
                Tensor x = env.scope().allocate("x", DType.BF16, 4, 6);
                return iae("bf16 norm with an f32 weight", "weight: expected dtype bf16, got f32",
                        () -> CPU.rmsNormForward(x, env.floats("w", 6), 1e-5f,
                                env.scope().allocate("out", DType.BF16, 4, 6), env.floats("rstd", 4)));
            },
            env -> {
                Tensor x = env.scope().allocate("x", DType.BF16, 4, 6);
                return iae("bf16 norm with bf16 statistics", "rstd: expected dtype f32, got bf16",
                        () -> CPU.rmsNormForward(x, env.scope().allocate("w", DType.BF16, 6), 1e-5f,
                                env.scope().allocate("out", DType.BF16, 4, 6), env.scope().allocate("rstd", DType.BF16, 4)));
            },
            env -> {
                Tensor a = env.floats("a", 5);
                Tensor b = env.scope().allocate("b", DType.BF16, 5);
                return iae("add across dtypes", "b: expected dtype f32 like 'a'", () -> CPU.add(a, b, a));
            },
            env -> {
                Tensor logits = env.scope().allocate("logits", DType.BF16, 3, 7);
                return iae("bf16 cross-entropy into f32 gradients", "gradLogits: expected dtype bf16, got f32",
                        () -> CPU.crossEntropyBackward(logits, env.ints("t", new int[] {0, 1, 2}, 3), 1f,
                                env.floats("g", 3, 7)));
            },
            env -> {
                Tensor gradOut = env.scope().allocate("gradOut", DType.BF16, 4, 6);
                return iae("bf16 bias gradient into bf16", "gradBias: expected dtype f32, got bf16",
                        () -> CPU.biasBackward(gradOut, env.scope().allocate("gradBias", DType.BF16, 6)));
            },
            env -> {
                Tensor t = env.floats("t", 4, 2);
                int from = env.rng().nextInt(6) - 1;
                return iae("slice [" + from + ", 5)", "slice", () -> t.slice(from, 5));
            });

    private static void groupedGemm(Env env, int rows, int[] offsets) {
        int groups = offsets.length - 1;
        List<Tensor> weights = new java.util.ArrayList<>();
        for (int g = 0; g < groups; g++) {
            weights.add(env.floats("w" + g, 4, 3));
        }
        CPU.groupedGemmNn(env.ints("offsets", offsets, groups + 1), env.floats("a", rows, 4),
                env.scope().table("weights", weights), env.floats("c", rows, 3));
    }

    @Test
    void malformedCallsFailWithSpecificExceptionsNamingTheArgument() {
        SplittableRandom rng = new SplittableRandom(2024);
        int[] runs = new int[GENERATORS.size()];
        try (MoELayer layer = new MoELayer(CPU, CONFIG, 1)) {
            for (int i = 0; i < CALLS; i++) {
                int g = rng.nextInt(GENERATORS.size());
                runs[g]++;
                try (TensorScope scope = TensorScope.confined(CPU)) {
                    Bad bad = GENERATORS.get(g).apply(new Env(layer, scope, rng, i));
                    RuntimeException e = assertThrows(bad.type(), bad.call(), "call " + i + ": " + bad.what());
                    String message = e.getMessage();
                    assertTrue(message != null && !message.isBlank(), "call " + i + ": " + bad.what() + ": empty message");
                    assertTrue(message.contains(bad.mentions()),
                            "call " + i + ": " + bad.what() + ": message '" + message + "' does not name '" + bad.mentions() + "'");
                }
            }
            for (int g = 0; g < runs.length; g++) {
                assertTrue(runs[g] >= 10, "generator " + g + " ran only " + runs[g] + " times");
            }
            // After all that, the layer still computes: a valid pass gives finite outputs.
            try (TensorScope scope = TensorScope.confined(CPU)) {
                Tensor y = layer.forward(TestData.tensor(scope, "x", TestData.input(5, HIDDEN, 1)));
                assertEquals(-1, CPU.findNonFinite(y));
                assertFalse(y.toFloatArray()[0] == 0f && y.toFloatArray()[1] == 0f, "output is not all zero");
            }
        }
    }
}
