package dev.panamoe.runtime.train;

import dev.panamoe.ops.Parameter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A run's starting weights from a safetensors file of global tensors (as {@code checkpoint export}
 * writes them): each parameter takes its slice ({@link Checkpoint.Shard}) of the tensor of its
 * global name, one tensor read at a time; a placement replica's slot takes its expert's values,
 * a free slot stays zero. Every tensor needed is checked (present, of the full shape) before any
 * value is copied.
 */
public final class InitialWeights {
    private InitialWeights() {
    }

    /** A model held whole: every parameter is its global tensor, and the file holds no other. */
    public static void load(Path file, List<Parameter> parameters) {
        load(file, parameters, parameters.stream().map(Checkpoint.Shard::whole).toList(), true);
    }

    /**
     * Sets each parameter to its shard's slice of the file's tensor; with {@code wholeModel}, a
     * tensor of the file that no parameter takes is refused too (a rank holding part of the model
     * cannot tell).
     *
     * @throws CheckpointException naming the file and the first few tensors that are missing, of
     *         another shape or not in the model; nothing is copied then
     */
    public static void load(Path file, List<Parameter> parameters, List<Checkpoint.Shard> shards, boolean wholeModel) {
        try (SafeTensors.Reader reader = SafeTensors.open(file)) {
            List<String> problems = new ArrayList<>();
            Set<String> used = new HashSet<>();
            for (Checkpoint.Shard s : shards) {
                if (s.tensor() == null || !used.add(s.tensor())) {
                    continue;
                }
                SafeTensors.Info t = reader.tensor(s.tensor());
                if (t == null) {
                    problems.add("tensor '" + s.tensor() + "' of this model is missing");
                } else if (!Arrays.equals(t.shape(), s.fullShape())) {
                    problems.add("tensor '" + s.tensor() + "' has shape " + Arrays.toString(t.shape()) + " there, "
                            + Arrays.toString(s.fullShape()) + " here");
                }
            }
            if (wholeModel) {
                reader.tensors().stream().filter(t -> !used.contains(t.name()))
                        .forEach(t -> problems.add("tensor '" + t.name() + "' is not in this model"));
            }
            if (!problems.isEmpty()) {
                int shown = Math.min(4, problems.size());
                throw new CheckpointException("--init-from " + file + " does not fit this model: "
                        + String.join("; ", problems.subList(0, shown))
                        + (problems.size() > shown ? "; and " + (problems.size() - shown) + " more" : ""));
            }
            for (int i = 0; i < parameters.size(); i++) {
                Checkpoint.Shard s = shards.get(i);
                if (s.tensor() != null) {
                    parameters.get(i).value().copyFrom(s.slice().of(reader.read(s.tensor()), s.fullShape()));
                }
            }
        }
    }
}
