package dev.panamoe.runtime.cli;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.BackendUnavailableException;
import dev.panamoe.ops.Device;
import dev.panamoe.runtime.data.Tokenizer;
import dev.panamoe.runtime.model.Generator;
import dev.panamoe.runtime.train.CheckpointException;
import dev.panamoe.runtime.train.TrainedModel;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code panamoe sample}: text from a trained model's checkpoint, decoded incrementally with a KV
 * cache ({@link Generator}), through the tokenizer the model was trained with.
 */
@Command(name = "sample", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate text from the model in a checkpoint (of 'train --checkpoint DIR'), one token at a "
                + "time with a KV cache, and report tokens/s.",
            "The checkpoint's tokenizer reads the prompt and writes the text; a model of the synthetic corpus reads "
                + "and writes token ids separated by spaces."})
public final class SampleCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", paramLabel = "DIR", required = true,
            description = "The checkpoint directory of a training run (its newest committed step is read).")
    Path checkpoint;
    @Option(names = "--prompt", paramLabel = "TEXT",
            description = "Text to continue (default: a newline; for the synthetic corpus, token 0).")
    String prompt;
    @Option(names = "--tokens", paramLabel = "N", converter = OptionErrors.AtLeastOne.class, description = "Tokens to generate (default: ${DEFAULT-VALUE}).")
    int tokens = 200;
    @Option(names = "--temperature", paramLabel = "T", converter = OptionErrors.NonNegative.class,
            description = "Softmax temperature; 0 takes the most likely token (default: ${DEFAULT-VALUE}).")
    double temperature = 1.0;
    @Option(names = "--top-k", paramLabel = "K", converter = OptionErrors.AtLeastOne.class,
            description = "Draw among the K most likely tokens; 1 is greedy (default: all).")
    Integer topK;
    @Option(names = "--seed", paramLabel = "S", description = "Seed of the draws (default: ${DEFAULT-VALUE}).")
    long seed = 1;
    @Option(names = "--device", paramLabel = "cpu|cuda[:N]", description = "Where the model runs (default: ${DEFAULT-VALUE}).")
    String device = "cpu";
    @Option(names = "--threads", converter = OptionErrors.AtLeastOne.class, description = "CPU threads of the kernels (default: the library's).")
    Integer threads;

    @Override
    public Integer call() {
        Backend backend = backend();
        if (threads != null) {
            backend.setNumThreads(threads);
        }
        TrainedModel trained;
        try {
            trained = TrainedModel.open(backend, checkpoint);
        } catch (CheckpointException e) {
            throw invalid("--checkpoint", e.getMessage());
        }
        PrintStream out = System.out;
        try (trained; Generator generator = new Generator(trained.model())) {
            Tokenizer tokenizer = trained.tokenizer();
            int[] context = encodePrompt(tokenizer, trained.model().config().vocab());
            out.println("model:     " + trained.model().config().describe());
            out.println("checkpoint: " + trained.file() + " (step " + trained.step() + "), tokenizer "
                    + (tokenizer == null ? "none (token ids)" : tokenizer.name()));
            Generator.Sampling sampling = new Generator.Sampling(temperature, topK == null ? 0 : topK, seed);
            long start = System.nanoTime();
            int[] drawn = generator.generate(context, tokens, sampling, t -> { });
            double seconds = (System.nanoTime() - start) / 1e9;
            int[] all = Arrays.copyOf(context, context.length + drawn.length);
            System.arraycopy(drawn, 0, all, context.length, drawn.length);
            out.println("----");
            out.println(decode(tokenizer, all));
            out.println("----");
            out.printf(Locale.ROOT, "generated %d tokens in %.2f s (with the %d-token prompt): %.1f tokens/s%n",
                    drawn.length, seconds, context.length, drawn.length / seconds);
        }
        return 0;
    }

    /** The prompt's ids: the tokenizer's, or ids written out when the model was not trained on text. */
    private int[] encodePrompt(Tokenizer tokenizer, int vocab) {
        if (tokenizer != null) {
            int[] ids = tokenizer.encode(prompt == null ? "\n" : prompt);
            if (ids.length == 0) {
                throw invalid("--prompt", "must hold at least one token, got an empty prompt");
            }
            return ids;
        }
        if (prompt == null) {
            return new int[] {0};
        }
        try {
            int[] ids = Arrays.stream(prompt.strip().split("\\s+")).mapToInt(Integer::parseInt).toArray();
            for (int id : ids) {
                if (id < 0 || id >= vocab) {
                    throw invalid("--prompt", "token id " + id + " is outside [0, " + vocab + ")");
                }
            }
            return ids;
        } catch (NumberFormatException e) {
            throw invalid("--prompt", "this model was trained on the synthetic corpus and reads token ids separated "
                    + "by spaces, got '" + prompt + "'");
        }
    }

    private static String decode(Tokenizer tokenizer, int[] ids) {
        return tokenizer != null ? tokenizer.decode(ids)
                : Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(" "));
    }

    private Backend backend() {
        try {
            return Backend.forDevice(Device.parse(device));
        } catch (IllegalArgumentException | BackendUnavailableException e) {
            throw invalid("--device", e.getMessage());
        }
    }

    private ParameterException invalid(String option, String message) {
        return new ParameterException(spec.commandLine(), "Invalid value for option '" + option + "': " + message);
    }
}
