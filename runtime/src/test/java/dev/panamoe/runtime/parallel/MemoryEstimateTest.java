package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.CpuBackend;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
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
    private static final String RESULT = "resident growth bytes: ";

    /** "layers,hidden,experts,moeEvery,batch,microBatches,seq,capacity(0 = dropless),plan,world". */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"4,128,16,1,16,1,64,0,single,1", "6,256,8,2,8,2,64,0,single,1",
        "4,128,8,1,16,4,64,1.25,'pp=2,ep=2',4", "2,128,8,1,16,2,32,0,'tp=2,dp=2',4"})
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
                () -> MemoryEstimate.of(huge, config, ParallelPlan.SINGLE, huge.experts(), false));
        assertTrue(bytes.getMessage().contains("overflows a 64-bit byte count"), bytes.getMessage());
    }

    @Test
    void theHeaviestStageIsTheFirstUnder1F1bAndTheWorldSumsEveryRank() {
        GptMoeConfig model = GptMoeConfig.preset("tiny").toBuilder().layers(4).build();
        TrainingConfig config = TrainingConfig.builder().batch(16).microBatches(4).seq(64).build();
        ParallelPlan plan = ParallelPlan.parse("pp=4", 4);
        MemoryEstimate estimate = MemoryEstimate.of(model, config, plan, model.experts(), false);
        assertTrue(estimate.describe().contains("stage 0 of 4"), estimate.describe());
        assertTrue(estimate.worldBytes() > estimate.rankBytes() && estimate.worldBytes() < 4 * estimate.rankBytes(),
                estimate.describe());
        MemoryEstimate cuda = MemoryEstimate.of(model, config, plan, model.experts(), true);
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
                    .microBatches(Integer.parseInt(f[5])).seq(Integer.parseInt(f[6])).evalEvery(0).build();
            ParallelPlan plan = planSpec.equals("single") ? ParallelPlan.SINGLE : ParallelPlan.parse(planSpec, world);
            return new Run(b.build(), config, plan);
        }

        MemoryEstimate estimate() {
            return MemoryEstimate.of(model, config, plan, model.experts() / plan.ep(), false);
        }

        /** Builds and trains two steps: one model, or every rank of an in-JVM world; prints the growth when measured. */
        void train(Backend backend, boolean measured) {
            SyntheticCorpus corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.seq()));
            if (plan.world() == 1) {
                try (GptMoeModel m = new GptMoeModel(backend, model, 1); Trainer t = new Trainer(m, corpus, config)) {
                    t.trainStep();
                    t.trainStep();
                    report(measured);
                }
                return;
            }
            RankLayout layout = new RankLayout(plan);
            InJvmWorld.run(plan.world(), Duration.ofMinutes(5), comm -> {
                try (ProcessGroups groups = new ProcessGroups(layout, comm);
                        GptMoeModel m = new GptMoeModel(backend, model, 1, groups);
                        Trainer t = new Trainer(m, corpus, config)) {
                    t.trainStep();
                    t.trainStep();
                    comm.barrier();
                    if (comm.rank() == 0) {
                        report(measured);
                    }
                    comm.barrier();
                }
                return null;
            });
        }
    }

    private static long measuredBefore;

    private static void report(boolean measured) {
        if (measured) {
            System.out.println(RESULT + (residentBytes() - measuredBefore));
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
        warmUp.train(cpu, false);
        measuredBefore = residentBytes();
        run.train(cpu, true);
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
