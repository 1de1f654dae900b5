package dev.panamoe.runtime.cli;

import dev.panamoe.ops.DType;
import dev.panamoe.runtime.parallel.MemoryEstimate;
import dev.panamoe.runtime.report.Plural;
import dev.panamoe.runtime.train.Checkpoint;
import dev.panamoe.runtime.train.CheckpointIndex;
import dev.panamoe.runtime.train.CheckpointIndex.LogicalTensor;
import dev.panamoe.runtime.train.CheckpointIndex.Part;
import dev.panamoe.runtime.train.CheckpointStore;
import dev.panamoe.runtime.train.WorldCheckpoint;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code panamoe checkpoint}: a training run's checkpoint directory as the logical model its
 * newest manifest indexes — what it holds and whether it is whole ({@code info}), and its global
 * tensors as a safetensors file ({@code export}, for {@code train --init-from}).
 */
@Command(name = "checkpoint", mixinStandardHelpOptions = true,
        subcommands = {CheckpointCommand.Info.class, CheckpointCommand.Export.class},
        description = "Look into a checkpoint directory of 'train --checkpoint DIR' (its newest committed step): "
                + "'checkpoint info DIR', 'checkpoint export DIR --safetensors FILE'.")
public final class CheckpointCommand implements Runnable {

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    @Command(name = "info", mixinStandardHelpOptions = true, sortOptions = false,
            description = "Print the step, plan, world, precision, model, data position, expert placement, the global "
                    + "tensors and their sizes, and check every rank file: present, its length and crc32c as the "
                    + "manifest records them.")
    static final class Info implements Callable<Integer> {
        @Parameters(paramLabel = "DIR", description = "The checkpoint directory.")
        Path dir;
        @Option(names = "--tensors", description = "Also list every global tensor: shape and the rank files holding it.")
        boolean tensors;

        @Override
        public Integer call() {
            PrintStream out = System.out;
            try (WorldCheckpoint c = WorldCheckpoint.open(dir)) {
                CheckpointStore.Manifest m = c.manifest();
                CheckpointIndex index = c.index();
                out.println("checkpoint: " + dir + ", step " + m.step() + " (" + m.file().getFileName() + ")");
                out.println("plan:       " + index.plan() + " on " + Plural.of(m.world(), "rank"));
                out.println("precision:  " + index.precision() + "; roles " + String.join(", ", index.roles())
                        + " (the parameters and their AdamW moments)");
                out.println("model:      " + c.modelConfig().describe());
                out.println("data:       " + index.data() + "; next training sequence at " + index.dataPosition());
                if (index.placementPolicy() != null) {
                    out.println("placement:  " + index.placementPolicy());
                    for (int l = 0; l < index.placements().size(); l++) {
                        out.println("  MoE layer " + l + ": " + index.placements().get(l));
                    }
                }
                long values = index.tensors().stream().mapToLong(LogicalTensor::numel).sum();
                out.println("tensors:    " + Plural.of(index.tensors().size(), "global tensor") + ", " + values
                        + " values (" + MemoryEstimate.bytes(values * Float.BYTES) + " per role in f32)");
                long bytes = m.files().stream().mapToLong(CheckpointStore.FileEntry::bytes).sum();
                out.println("files:      " + Plural.of(m.world(), "rank file") + ", " + MemoryEstimate.bytes(bytes)
                        + "; every one present, its length and crc32c as the manifest records them");
                for (int r = 0; r < m.world(); r++) {
                    CheckpointStore.FileEntry f = m.files().get(r);
                    int rank = r;
                    long copies = index.tensors().stream().flatMap(t -> t.parts().stream())
                            .filter(p -> p.rank() == rank && p.copy()).count();
                    long held = c.header(r).entries().stream().filter(e -> e.role().equals("value")).count();
                    out.printf(Locale.ROOT, "  %s  %s  crc32c %08x  %s (%d %s)%n", f.name(),
                            MemoryEstimate.bytes(f.bytes()), f.crc32c(), Plural.of(held, "parameter tensor"), copies,
                            copies == 1 ? "copy" : "copies");
                }
                if (tensors) {
                    for (LogicalTensor t : index.tensors()) {
                        out.println("  " + t.name() + " " + Arrays.toString(t.shape()) + ": " + t.parts().stream()
                                .map(CheckpointCommand::describe).collect(Collectors.joining(", ")));
                    }
                }
            }
            return 0;
        }
    }

    private static String describe(Part p) {
        return "rank " + p.rank() + " " + Checkpoint.sliceSpec(p.slice()) + (p.copy() ? " (copy)" : "");
    }

    @Command(name = "export", mixinStandardHelpOptions = true, sortOptions = false,
            description = "Write the model's global tensors, put together from the rank files' slices one tensor at a "
                    + "time, to a safetensors file under their names (wte, blocks.L.attn.qkv.weight, "
                    + "blocks.L.moe.experts.E.w1, ...), with the step, plan and configuration in its __metadata__. "
                    + "The file appears only once whole.")
    static final class Export implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Parameters(paramLabel = "DIR", description = "The checkpoint directory.")
        Path dir;
        @Option(names = "--safetensors", paramLabel = "FILE", required = true, description = "The file to write.")
        Path file;
        @Option(names = "--dtype", paramLabel = "fp32|bf16", defaultValue = "fp32",
                description = "Stored dtype (bf16 rounds to nearest even; default: ${DEFAULT-VALUE}).")
        String dtype;

        @Override
        public Integer call() {
            DType stored = switch (dtype.strip().toLowerCase(Locale.ROOT)) {
                case "fp32", "f32" -> DType.F32;
                case "bf16" -> DType.BF16;
                default -> throw new ParameterException(spec.commandLine(), "Invalid value for option '--dtype': "
                        + "expected fp32 or bf16, got " + dtype);
            };
            if (Files.isDirectory(file)) {
                throw new ParameterException(spec.commandLine(), "Invalid value for option '--safetensors': " + file
                        + " is a directory, not a file");
            }
            try (WorldCheckpoint c = WorldCheckpoint.open(dir)) {
                c.exportSafetensors(file, stored);
                CheckpointIndex index = c.index();
                long values = index.tensors().stream().mapToLong(LogicalTensor::numel).sum();
                System.out.println("wrote " + file + ": " + Plural.of(index.tensors().size(), "tensor") + ", " + values
                        + " values in " + stored.name().toLowerCase(Locale.ROOT) + " (step " + c.manifest().step()
                        + " of " + dir + ", plan " + index.plan() + ")");
            }
            return 0;
        }
    }
}
