package dev.panamoe.jmh;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.ops.Backend;
import dev.panamoe.ops.BackendUnavailableException;
import dev.panamoe.ops.CudaBackend;
import dev.panamoe.ops.EmulatedCudaBackend;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.report.OperatorTimer;
import dev.panamoe.runtime.report.StepMetrics;
import dev.panamoe.runtime.train.Precision;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;

/**
 * The GPU suite's training-step timeline: trains a GPT-MoE preset on the synthetic corpus on one
 * device for a few steps and writes, per step, the host's wall time, the device's time between two
 * CUDA events around the step, and the host synchronisations the backend counted; then the
 * operators' host time per step ({@link OperatorTimer}): on a GPU an operator whose host time is
 * far above its launch cost is where the host waited for the device.
 *
 * <p>The events are recorded on the legacy default stream, which waits for the backend's stream
 * (created blocking, by {@code cudaStreamCreate}), so they bracket all of the step's device work.
 * Under Nsight Systems the same run gives the kernel-level timeline (scripts/gpu-suite/run.sh).
 *
 * <p>Usage: {@code GpuStepTimeline [--device cuda|emulated] [--preset small] [--precision fp32|bf16|auto]
 * [--batch 16] [--seq 128] [--warmup 2] [--steps 10] --out FILE}. {@code emulated} runs on
 * {@link EmulatedCudaBackend} (no GPU: checks this program, times nothing of a GPU). The precision is
 * {@code train --precision}'s (bf16: f32 masters and moments, bf16 working copies and activations).
 */
public final class GpuStepTimeline {
    private GpuStepTimeline() {}

    /** The run's settings, from the command line. */
    record Options(String device, String preset, Precision precision, int batch, int seq, int warmup, int steps,
            Path out) {
        static Options parse(String[] args) {
            String device = "cuda", preset = "small";
            Precision precision = Precision.FP32;
            int batch = 16, seq = 128, warmup = 2, steps = 10;
            Path out = null;
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
                String v = args[++i];
                switch (a) {
                    case "--device" -> device = v;
                    case "--preset" -> preset = v;
                    case "--precision" -> precision = Precision.parse(a, v);
                    case "--batch" -> batch = positive(a, v);
                    case "--seq" -> seq = positive(a, v);
                    case "--warmup" -> warmup = integer(a, v);
                    case "--steps" -> steps = positive(a, v);
                    case "--out" -> out = Path.of(v);
                    default -> throw new IllegalArgumentException("unknown option " + a);
                }
            }
            if (!device.equals("cuda") && !device.equals("emulated"))
                throw new IllegalArgumentException("--device must be cuda or emulated, got " + device);
            if (warmup < 0) throw new IllegalArgumentException("--warmup must be >= 0, got " + warmup);
            if (out == null) throw new IllegalArgumentException("--out FILE is required");
            return new Options(device, preset, precision, batch, seq, warmup, steps, out);
        }

        private static int positive(String name, String value) {
            int v = integer(name, value);
            if (v < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + value);
            return v;
        }

        private static int integer(String name, String value) {
            try {
                return Integer.parseInt(value);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(name + " must be an integer, got " + value);
            }
        }
    }

    /** The backend's count of host synchronisations so far (empty for a backend that does not count them). */
    static OptionalLong hostSyncs(Backend backend) {
        if (backend instanceof CudaBackend c) return OptionalLong.of(c.hostSyncs().count());
        if (backend instanceof EmulatedCudaBackend e) return OptionalLong.of(e.hostSyncs().count());
        return OptionalLong.empty();
    }

    /** Runs the steps and returns the timeline document (also written to {@code options.out()}). */
    static JsonObject run(Options o) throws IOException {
        boolean cuda = o.device().equals("cuda");
        Backend backend = cuda ? CudaBackend.get(0) : new EmulatedCudaBackend(1L << 30);
        SyntheticCorpus corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults().withSeqLen(o.seq()));
        GptMoeConfig model = GptMoeConfig.preset(o.preset()).toBuilder().vocab(corpus.vocabSize()).maxSeq(o.seq())
                .build();
        int timed = o.warmup() + o.steps();
        // One step more than is run: the last step of a schedule evaluates, which is not a training step.
        Precision.Resolved precision = o.precision().resolve(backend.device());
        TrainingConfig config = TrainingConfig.builder().steps(timed + 1).batch(o.batch()).seq(o.seq()).evalEvery(0)
                .precision(precision.precision()).build();
        JsonObject doc = new JsonObject();
        doc.addProperty("tool", "gpu_step_timeline");
        doc.addProperty("device", cuda ? CudaRuntime.properties(0).name() : backend.name() + " (no GPU: nothing of a GPU is timed)");
        doc.addProperty("preset", o.preset());
        doc.addProperty("precision", precision.precision().label());
        doc.addProperty("batch", o.batch());
        doc.addProperty("seq", o.seq());
        doc.addProperty("warmup_steps", o.warmup());
        String syncsReason = hostSyncs(backend).isPresent() ? null
                : "not counted: " + backend.name() + " does not count host synchronisations";
        if (syncsReason != null) doc.addProperty("host_syncs", syncsReason);
        if (!cuda) doc.addProperty("gpu_ms", "not timed: no CUDA events on the emulated device");
        JsonArray steps = new JsonArray();
        List<Double> hostMs = new ArrayList<>(), gpuMs = new ArrayList<>();
        MemorySegment start = cuda ? CudaRuntime.eventCreate() : null, end = cuda ? CudaRuntime.eventCreate() : null;
        try (GptMoeModel m = new GptMoeModel(backend, model, 1, precision.dtype()); Trainer trainer = new Trainer(m, corpus, config)) {
            for (int s = 1; s <= timed; s++) {
                if (s == o.warmup() + 1) trainer.timer().reset();
                OptionalLong syncsBefore = hostSyncs(backend);
                if (cuda) CudaRuntime.eventRecord(start, MemorySegment.NULL);
                long t0 = System.nanoTime();
                StepMetrics metrics = trainer.trainStep();
                double host = (System.nanoTime() - t0) / 1e6;
                JsonObject step = new JsonObject();
                step.addProperty("step", s);
                step.addProperty("warmup", s <= o.warmup());
                step.addProperty("loss", metrics.loss());
                step.addProperty("host_ms", host);
                if (cuda) {
                    CudaRuntime.eventRecord(end, MemorySegment.NULL);
                    CudaRuntime.eventSynchronize(end);
                    double gpu = CudaRuntime.eventElapsedMillis(start, end);
                    step.addProperty("gpu_ms", gpu);
                    if (s > o.warmup()) gpuMs.add(gpu);
                }
                OptionalLong syncsAfter = hostSyncs(backend);
                if (syncsBefore.isPresent() && syncsAfter.isPresent())
                    step.addProperty("host_syncs", syncsAfter.getAsLong() - syncsBefore.getAsLong());
                if (s > o.warmup()) hostMs.add(host);
                steps.add(step);
            }
            doc.add("steps", steps);
            JsonObject median = new JsonObject();
            median.addProperty("host_ms", median(hostMs));
            if (cuda) median.addProperty("gpu_ms", median(gpuMs));
            doc.add("median_after_warmup", median);
            JsonArray operators = new JsonArray();
            for (OperatorTimer.Entry e : trainer.timer().entries()) {
                JsonObject op = new JsonObject();
                op.addProperty("name", e.name());
                op.addProperty("host_ms_per_step", e.nanos() / 1e6 / o.steps());
                op.addProperty("calls_per_step", (double) e.calls() / o.steps());
                op.addProperty("share", e.share());
                operators.add(op);
            }
            doc.add("operators", operators);
            print(doc, trainer.timer().table(), syncsReason);
        } finally {
            if (cuda) {
                CudaRuntime.eventDestroy(start);
                CudaRuntime.eventDestroy(end);
            }
        }
        Files.writeString(o.out(), new GsonBuilder().setPrettyPrinting().create().toJson(doc) + "\n");
        return doc;
    }

    private static double median(List<Double> values) {
        List<Double> sorted = values.stream().sorted().toList();
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    private static void print(JsonObject doc, String operatorTable, String syncsReason) {
        System.out.printf(Locale.ROOT, "timeline: %s, preset %s in %s, batch %d x seq %d%n",
                doc.get("device").getAsString(), doc.get("preset").getAsString(), doc.get("precision").getAsString(),
                doc.get("batch").getAsInt(), doc.get("seq").getAsInt());
        System.out.println(" step  warmup    host ms     gpu ms  host syncs");
        for (var e : doc.getAsJsonArray("steps")) {
            JsonObject s = e.getAsJsonObject();
            System.out.printf(Locale.ROOT, "%5d  %-6s %10.2f %10s %11s%n", s.get("step").getAsInt(),
                    s.get("warmup").getAsBoolean() ? "yes" : "", s.get("host_ms").getAsDouble(),
                    s.has("gpu_ms") ? String.format(Locale.ROOT, "%.2f", s.get("gpu_ms").getAsDouble()) : "-",
                    s.has("host_syncs") ? s.get("host_syncs").getAsString() : "-");
        }
        if (syncsReason != null) System.out.println("host syncs: " + syncsReason);
        System.out.print("operators, host time over the steps after warm-up:\n" + operatorTable);
    }

    public static void main(String[] args) throws IOException {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("GpuStepTimeline: " + e.getMessage());
            System.err.println("usage: GpuStepTimeline [--device cuda|emulated] [--preset P] [--precision fp32|bf16|auto] "
                    + "[--batch B] [--seq S] [--warmup W] [--steps N] --out FILE");
            System.exit(2);
            return;
        }
        try {
            run(options);
        } catch (BackendUnavailableException e) {
            System.err.println("GpuStepTimeline: " + e.getMessage());
            System.exit(3);
        }
        System.out.println("GpuStepTimeline: wrote " + options.out());
    }
}
