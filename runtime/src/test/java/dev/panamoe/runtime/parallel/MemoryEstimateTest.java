package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Device;
import dev.panamoe.ops.EmulatedCudaBackend;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The estimate against what training really holds: a child JVM (fixed, pre-touched heap, so that
 * only native memory moves the resident set) warms up on a small model, reads VmRSS, builds the
 * configuration's model(s), optimizer and trainer, trains two steps and reads VmRSS again. The
 * growth must lie within [{@value #LOWER}, {@value #UPPER}] of the estimate's native part: the
 * estimate may not miss a large buffer, nor refuse runs that fit by overcounting much. In-JVM
 * worlds are measured whole ({@link MemoryEstimate#worldBytes}); their received-row buffers grow
 * to the rows that really arrive, below the estimate's worst case, hence the lower bound.
 */
class MemoryEstimateTest {
    private static final double LOWER = 0.8;
    private static final double UPPER = 1.2;
    private static final double EXACT = 0.02;
    private static final String RESULT = "resident growth bytes: ";

    /**
     * "layers,hidden,experts,moeEvery,batch,microBatches,seq,capacity(0 = dropless),plan,world,precision".
     * The bf16 cases hold the estimate of a model that runs everything in bf16 (every activation
     * and activation gradient, the MoE rows; f32 masters, gradients, moments, attention scores
     * and norm statistics) to what such a model really allocates.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"4,128,16,1,16,1,64,0,single,1,fp32", "6,256,8,2,8,2,64,0,single,1,fp32",
        "4,128,8,1,16,4,64,1.25,'pp=2,ep=2',4,fp32", "2,128,8,1,16,2,32,0,'tp=2,dp=2',4,fp32",
        "6,256,8,2,8,2,64,0,single,1,bf16", "4,128,8,1,16,4,64,1.25,'pp=2,ep=2',4,bf16"})
    void theEstimateBoundsTheResidentGrowthOfTraining(String spec) throws IOException, InterruptedException {
        Run run = Run.parse(spec);
        long growth = child(spec);
        long estimate = run.estimate().worldBytes() - run.estimate().javaHeapBytes() * run.plan().world();
        double ratio = growth / (double) estimate;
        System.out.printf("%s: resident growth %.1f MiB, estimate %.1f MiB, ratio %.2f%n", spec, growth / 1048576.0,
                estimate / 1048576.0, ratio);
        assertTrue(ratio >= LOWER && ratio <= UPPER, String.format("%s: resident set grew by %.1f MiB, estimate %.1f MiB"
                + " (ratio %.2f, bound [%s, %s])%n%s", spec, growth / 1048576.0, estimate / 1048576.0, ratio, LOWER,
                UPPER, run.estimate().describe()));
    }

    /**
     * Exact where the resident set is approximate: on an emulated CUDA device every tensor goes
     * through the caching allocator, which counts the bytes asked for. After two steps on one
     * device the live tensors — parameters, gradients, moments, working copies, the micro-batch's
     * activations, the MoE workspaces (on one device sized for all T * K rows, as estimated) and
     * the shared gradients — must be the estimate's native part within {@value #EXACT}.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"4,128,16,1,16,1,64,0,single,1,fp32", "6,256,8,2,8,2,64,0,single,1,fp32",
        "4,128,16,1,16,1,64,0,single,1,bf16", "6,256,8,2,8,2,64,0,single,1,bf16"})
    void theEstimateIsWhatAnEmulatedDeviceHoldsAfterTwoSteps(String spec) {
        Run run = Run.parse(spec);
        MemoryEstimate estimate = run.estimate();
        long expected = estimate.rankBytes() - estimate.javaHeapBytes();
        EmulatedCudaBackend device = new EmulatedCudaBackend(1L << 30);
        long[] held = new long[1];
        run.train(device, () -> held[0] = device.allocator().stats().requestedBytes());
        double ratio = held[0] / (double) expected;
        System.out.printf("%s: the device holds %.3f MiB, estimate %.3f MiB, ratio %.4f%n", spec, held[0] / 1048576.0,
                expected / 1048576.0, ratio);
        assertTrue(Math.abs(ratio - 1) <= EXACT, String.format("%s: the device holds %d bytes, the estimate says %d "
                + "(ratio %.4f)%n%s", spec, held[0], expected, ratio, estimate.describe()));
    }

    @Test
    void bf16HalvesTheActivationsAndAddsTheWorkingCopies() {
        Run fp32 = Run.parse("6,256,8,2,8,2,64,1.25,'pp=2,ep=2',4,fp32");
        Run bf16 = Run.parse("6,256,8,2,8,2,64,1.25,'pp=2,ep=2',4,bf16");
        MemoryEstimate wide = fp32.estimate();
        MemoryEstimate narrow = bf16.estimate();
        assertEquals("fp32 (requested)", wide.precision().toString());
        assertTrue(narrow.describe().contains(", in bf16 (requested):"), narrow.describe());
        assertEquals(wide.rankParameters(), narrow.rankParameters());
        long parameters = narrow.rankParameters();
        assertEquals(4 * parameters, part(narrow, "parameters (fp32 masters)"), narrow.describe());
        assertEquals(2 * parameters, part(narrow, "working copies of the parameters (bf16)"), narrow.describe());
        assertTrue(wide.parts().stream().noneMatch(p -> p.name().startsWith("working copies")), wide.describe());
        assertEquals(part(wide, "activations (fp32)") / 2, part(narrow, "activations (bf16)"));
        assertEquals(part(wide, "gradients shared by the blocks (fp32)") / 2,
                part(narrow, "gradients shared by the blocks (bf16)"));
        for (String f32 : List.of("gradients (fp32)", "AdamW moments", "attention scores (fp32)", "norm statistics",
                "gradient all-reduce bucket (fp32)")) {
            assertEquals(part(wide, f32), part(narrow, f32), f32);
        }
        // the rows halve; the router's f32 buffers stay, with a bf16 copy of its logits' gradient
        long moeWide = part(wide, "MoE workspaces");
        long moeNarrow = part(narrow, "MoE workspaces");
        assertTrue(moeNarrow > moeWide / 2 && moeNarrow < moeWide * 0.6, moeWide + " vs " + moeNarrow);
        assertTrue(narrow.rankBytes() < wide.rankBytes(), wide.describe() + narrow.describe());
    }

    /**
     * --grad-reduce bf16 replaces the f32 bucket by its bf16 copies (sent and received) and one
     * share's sums; nothing else changes.
     */
    @Test
    void gradientsSentAsBf16AddTheirBuffers() {
        GptMoeConfig model = GptMoeConfig.preset("tiny");
        TrainingConfig f32Reduce = TrainingConfig.builder().precision(Precision.BF16).build();
        TrainingConfig bf16Reduce = f32Reduce.toBuilder().gradReduce(Precision.BF16).build();
        ParallelPlan plan = ParallelPlan.parse("dp2", 2);
        MemoryEstimate f32 = MemoryEstimate.of(model, f32Reduce, plan, model.experts(), Device.CPU);
        MemoryEstimate bf16 = MemoryEstimate.of(model, bf16Reduce, plan, model.experts(), Device.CPU);
        long bucket = part(f32, "gradient all-reduce bucket (fp32)") / 4;
        long sent = part(bf16, "gradient all-reduce bucket as bf16");
        assertEquals(4 * bucket + 10 * Math.ceilDiv(bucket, 2), sent, bf16.describe());
        assertEquals(f32.rankBytes() - 4 * bucket + sent, bf16.rankBytes(), f32.describe() + bf16.describe());
    }

    /** The bytes of the one part whose name starts with prefix. */
    private static long part(MemoryEstimate estimate, String prefix) {
        List<MemoryEstimate.Part> matching = estimate.parts().stream().filter(p -> p.name().startsWith(prefix)).toList();
        assertEquals(1, matching.size(), prefix + " in\n" + estimate.describe());
        return matching.getFirst().bytes();
    }

    @Test
    void sizesThatOverflowALongAreRefusedNotWrapped() {
        GptMoeConfig.Builder wide = GptMoeConfig.preset("tiny").toBuilder().hidden(1 << 20).heads(1);
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> wide.experts(1 << 22).build());
        assertTrue(count.getMessage().startsWith("experts: 2 blocks of hidden 1048576 with 4194304 experts have more "
                + "parameters than a 64-bit count holds"), count.getMessage());
        GptMoeConfig huge = wide.experts(1 << 18).build(); // 2^61 parameters: their bytes overflow
        TrainingConfig config = TrainingConfig.builder().batch(8).seq(64).build();
        IllegalArgumentException bytes = assertThrows(IllegalArgumentException.class,
                () -> MemoryEstimate.of(huge, config, ParallelPlan.SINGLE, huge.experts(), Device.CPU));
        assertTrue(bytes.getMessage().contains("overflows a 64-bit byte count"), bytes.getMessage());
    }

    @Test
    void theHeaviestStageIsTheFirstUnder1F1bAndTheWorldSumsEveryRank() {
        GptMoeConfig model = GptMoeConfig.preset("tiny").toBuilder().layers(4).build();
        TrainingConfig config = TrainingConfig.builder().batch(16).microBatches(4).seq(64).build();
        ParallelPlan plan = ParallelPlan.parse("pp=4", 4);
        MemoryEstimate estimate = MemoryEstimate.of(model, config, plan, model.experts(), Device.CPU);
        assertTrue(estimate.describe().contains("stage 0 of 4"), estimate.describe());
        assertTrue(estimate.worldBytes() > estimate.rankBytes() && estimate.worldBytes() < 4 * estimate.rankBytes(),
                estimate.describe());
        // AUTO would query the device: the run's precision is given
        MemoryEstimate cuda = MemoryEstimate.of(model, config, plan, model.experts(), Device.cuda(0));
        assertEquals(estimate.rankBytes() + estimate.rankBytes() / 4, cuda.rankBytes(), cuda.describe());
    }

    /** One configuration of the parameterized test. */
    private record Run(GptMoeConfig model, TrainingConfig config, ParallelPlan plan) {
        static Run parse(String spec) {
            String[] f = spec.split(",(?=(?:[^']*'[^']*')*[^']*$)");
            int world = Integer.parseInt(f[9]);
            String planSpec = f[8].replace("'", "");
            GptMoeConfig.Builder b = GptMoeConfig.preset("tiny").toBuilder().layers(Integer.parseInt(f[0]))
                    .hidden(Integer.parseInt(f[1])).experts(Integer.parseInt(f[2])).moeEvery(Integer.parseInt(f[3]))
                    .maxSeq(Integer.parseInt(f[6]));
            double capacity = Double.parseDouble(f[7]);
            if (capacity > 0) {
                b.capacityFactor(capacity);
            }
            TrainingConfig config = TrainingConfig.builder().steps(2).batch(Integer.parseInt(f[4]))
                    .microBatches(Integer.parseInt(f[5])).seq(Integer.parseInt(f[6])).evalEvery(0)
                    .precision(Precision.parse("precision", f[10])).build();
            ParallelPlan plan = planSpec.equals("single") ? ParallelPlan.SINGLE : ParallelPlan.parse(planSpec, world);
            return new Run(b.build(), config, plan);
        }

        MemoryEstimate estimate() {
            return MemoryEstimate.of(model, config, plan, model.experts() / plan.ep(), Device.CPU);
        }

        DType dtype() {
            return config.precision().resolve(Device.CPU).dtype();
        }

        /** Builds and trains two steps: one model, or every rank of an in-JVM world; runs trained before closing them. */
        void train(Backend backend, Runnable trained) {
            SyntheticCorpus corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.seq()));
            if (plan.world() == 1) {
                try (GptMoeModel m = new GptMoeModel(backend, model, 1, dtype());
                        Trainer t = new Trainer(m, corpus, config)) {
                    t.trainStep();
                    t.trainStep();
                    trained.run();
                }
                return;
            }
            RankLayout layout = new RankLayout(plan);
            InJvmWorld.run(plan.world(), Duration.ofMinutes(5), comm -> {
                try (ProcessGroups groups = new ProcessGroups(layout, comm);
                        GptMoeModel m = new GptMoeModel(backend, model, 1, groups, null, dtype());
                        Trainer t = new Trainer(m, corpus, config)) {
                    t.trainStep();
                    t.trainStep();
                    comm.barrier();
                    if (comm.rank() == 0) {
                        trained.run();
                    }
                    comm.barrier();
                }
                return null;
            });
        }
    }


    private static long child(String spec) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch",
                "-cp", System.getProperty("java.class.path")));
        String nativeDir = System.getProperty("panamoe.native.dir");
        if (nativeDir != null) {
            command.add("-Dpanamoe.native.dir=" + nativeDir);
        }
        command.add(MemoryEstimateTest.class.getName());
        command.add(spec);
        Path log = Files.createTempFile("memory-estimate", ".log");
        Process child = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean done = child.waitFor(5, TimeUnit.MINUTES);
        if (!done) {
            child.destroyForcibly();
        }
        String output = Files.readString(log);
        Files.delete(log);
        assertTrue(done, "the child JVM did not finish within 5 minutes:\n" + output);
        assertEquals(0, child.exitValue(), "the child JVM failed:\n" + output);
        return output.lines().filter(l -> l.startsWith(RESULT))
                .mapToLong(l -> Long.parseLong(l.substring(RESULT.length()).strip())).findFirst()
                .orElseThrow(() -> new AssertionError("no '" + RESULT + "' line in:\n" + output));
    }

    /**
     * The child: trains a small configuration of the same kind first (loads the classes and the
     * native library, starts the kernels' and the ranks' threads), then measures the real one.
     */
    public static void main(String[] args) {
        Backend cpu = CpuBackend.get();
        cpu.setNumThreads(1);
        Run run = Run.parse(args[0]);
        Run warmUp = new Run(run.model().toBuilder().hidden(16).experts(run.plan().ep() * 2).build(),
                run.config(), run.plan());
        warmUp.train(cpu, () -> { });
        long before = residentBytes();
        run.train(cpu, () -> System.out.println(RESULT + (residentBytes() - before)));
    }

    private static long residentBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot read /proc/self/status", e);
        }
        throw new IllegalStateException("no VmRSS line in /proc/self/status");
    }
}
