package dev.panamoe.runtime.train;

import dev.panamoe.ops.Parameter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A model's weights from global tensors — a safetensors file (as {@code checkpoint export} writes
 * it, for {@code train --init-from}) or a checkpoint's logical model ({@link WorldCheckpoint}):
 * each parameter takes its slice ({@link Checkpoint.Shard}) of the tensor of its global name, one
 * tensor read at a time; a placement replica's slot takes its expert's values, a free slot stays
 * zero. Every tensor needed is checked (present, of the full shape) before any value is copied.
 */
public final class InitialWeights {
    private InitialWeights() {
    }

    /** Global tensors by name. */
    public interface Source {
        /** What to name in a refusal, e.g. "--init-from FILE". */
        String describe();

        List<String> names();

        /** The tensor's shape, or null when there is none of that name. */
        int[] shape(String name);

        float[] read(String name);
    }

    /** A safetensors file's tensors (F32 or BF16, read as f32). */
    static Source of(SafeTensors.Reader reader, String description) {
        return new Source() {
            @Override
            public String describe() {
                return description;
            }

            @Override
            public List<String> names() {
                return reader.tensors().stream().map(SafeTensors.Info::name).toList();
            }

            @Override
            public int[] shape(String name) {
                SafeTensors.Info t = reader.tensor(name);
                return t == null ? null : t.shape();
            }

            @Override
            public float[] read(String name) {
                return reader.read(name);
            }
        };
    }

    /** A model held whole, from a safetensors file: every parameter is its global tensor, and the file holds no other. */
    public static void load(Path file, List<Parameter> parameters) {
        load(file, parameters, parameters.stream().map(Checkpoint.Shard::whole).toList(), true);
    }

    /** Each parameter from its shard's slice of a safetensors file's tensor (see {@link #load(Source, List, List, boolean)}). */
    public static void load(Path file, List<Parameter> parameters, List<Checkpoint.Shard> shards, boolean wholeModel) {
        try (SafeTensors.Reader reader = SafeTensors.open(file)) {
            load(of(reader, "--init-from " + file), parameters, shards, wholeModel);
        }
    }

    /**
     * Sets each parameter to its shard's slice of the source's tensor; with {@code wholeModel}, a
     * tensor of the source that no parameter takes is refused too (a rank holding part of the
     * model cannot tell).
     *
     * @throws CheckpointException naming the source and the first few tensors that are missing, of
     *         another shape or not in the model; nothing is copied then
     */
    public static void load(Source source, List<Parameter> parameters, List<Checkpoint.Shard> shards,
            boolean wholeModel) {
        check(source, shards, wholeModel);
        for (int i = 0; i < parameters.size(); i++) {
            Checkpoint.Shard s = shards.get(i);
            if (s.tensor() != null) {
                parameters.get(i).value().copyFrom(s.slice().of(source.read(s.tensor()), s.fullShape()));
            }
        }
    }

    /**
     * Checks that the source holds every tensor the shards take, of its full shape (and, with
     * {@code wholeModel}, no other).
     *
     * @throws CheckpointException naming the source and the first few tensors that differ
     */
    static void check(Source source, List<Checkpoint.Shard> shards, boolean wholeModel) {
        List<String> problems = new ArrayList<>();
        Set<String> used = new HashSet<>();
        for (Checkpoint.Shard s : shards) {
            if (s.tensor() == null || !used.add(s.tensor())) {
                continue;
            }
            int[] shape = source.shape(s.tensor());
            if (shape == null) {
                problems.add("tensor '" + s.tensor() + "' of this model is missing");
            } else if (!Arrays.equals(shape, s.fullShape())) {
                problems.add("tensor '" + s.tensor() + "' has shape " + Arrays.toString(shape) + " there, "
                        + Arrays.toString(s.fullShape()) + " here");
            }
        }
        if (wholeModel) {
            source.names().stream().filter(name -> !used.contains(name))
                    .forEach(name -> problems.add("tensor '" + name + "' is not in this model"));
        }
        if (!problems.isEmpty()) {
            int shown = Math.min(4, problems.size());
            throw new CheckpointException(source.describe() + " does not fit this model: "
                    + String.join("; ", problems.subList(0, shown))
                    + (problems.size() > shown ? "; and " + (problems.size() - shown) + " more" : ""));
        }
    }
}
