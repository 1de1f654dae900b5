package dev.panamoe.runtime.train;

import dev.panamoe.ops.DType;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.parallel.TensorSlice;
import dev.panamoe.runtime.train.CheckpointIndex.LogicalTensor;
import dev.panamoe.runtime.train.CheckpointIndex.Part;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The newest committed step of a checkpoint directory, read as the logical model its manifest
 * indexes ({@link CheckpointIndex}): every rank file checked against the manifest (present, its
 * length and CRC-32C as recorded, its header of the manifest's step), every part the index names
 * found in its file with the slice's shape, and the owners of each tensor's slices covering it
 * exactly once. A global tensor is then assembled from its owners' slices one at a time
 * ({@link #read}), each slice checked against its CRC-32C as it is read.
 */
public final class WorldCheckpoint implements AutoCloseable {
    private final Path dir;
    private final CheckpointStore.Manifest manifest;
    private final List<Checkpoint.Header> headers;
    /** Each rank file's entries by {@link #key}. */
    private final List<Map<String, Checkpoint.Entry>> entries;
    private final FileChannel[] channels;
    private final Map<String, LogicalTensor> byName = new LinkedHashMap<>();

    private WorldCheckpoint(Path dir, CheckpointStore.Manifest manifest, List<Checkpoint.Header> headers,
            List<Map<String, Checkpoint.Entry>> entries) {
        this.dir = dir;
        this.manifest = manifest;
        this.headers = headers;
        this.entries = entries;
        this.channels = new FileChannel[headers.size()];
        manifest.index().tensors().forEach(t -> byName.put(t.name(), t));
    }

    private static String key(String name, String role) {
        return name + "\0" + role;
    }

    /**
     * Opens and checks the newest committed step in {@code dir}.
     *
     * @throws CheckpointException naming the directory or file and what is wrong
     */
    public static WorldCheckpoint open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new CheckpointException("checkpoint directory " + dir + " does not exist or is not a directory");
        }
        CheckpointStore.Manifest m = CheckpointStore.newest(dir);
        if (m == null) {
            throw new CheckpointException("checkpoint directory " + dir + " holds no checkpoint: no step was committed"
                    + " (no step-*.manifest.json)");
        }
        List<Checkpoint.Header> headers = new ArrayList<>();
        for (int r = 0; r < m.world(); r++) {
            CheckpointStore.FileEntry entry = m.files().get(r);
            Path file = dir.resolve(entry.name());
            if (!Path.of(entry.name()).getFileName().toString().equals(entry.name())) {
                throw new CheckpointException("checkpoint manifest " + m.file() + " names a file outside its directory: "
                        + entry.name());
            }
            if (!Files.exists(file)) {
                throw new CheckpointException("checkpoint " + dir + " step " + m.step() + " is incomplete: rank " + r
                        + "'s file " + entry.name() + " is missing");
            }
            CheckpointStore.checkListed(m, entry, file);
            Checkpoint.Header h = Checkpoint.readHeader(file);
            if (h.step() != m.step()) {
                throw new CheckpointException("checkpoint " + file + " holds step " + h.step() + ", but its manifest "
                        + m.file().getFileName() + " step " + m.step());
            }
            headers.add(h);
        }
        List<Map<String, Checkpoint.Entry>> entries = new ArrayList<>();
        for (Checkpoint.Header h : headers) {
            Map<String, Checkpoint.Entry> byKey = new HashMap<>();
            h.entries().forEach(e -> byKey.put(key(e.name(), e.role()), e));
            entries.add(byKey);
        }
        for (LogicalTensor t : m.index().tensors()) {
            checkParts(m, entries, t);
        }
        return new WorldCheckpoint(dir, m, List.copyOf(headers), List.copyOf(entries));
    }

    /** Every part is in its file with the slice's shape, and the owners' slices cover the tensor once. */
    private static void checkParts(CheckpointStore.Manifest m, List<Map<String, Checkpoint.Entry>> entries,
            LogicalTensor t) {
        for (Part p : t.parts()) {
            for (String role : m.index().roles()) {
                Checkpoint.Entry e = entries.get(p.rank()).get(key(p.key(), role));
                int[] expected = p.slice().shape(t.shape());
                if (e == null || !Arrays.equals(e.shape(), expected)) {
                    throw new CheckpointException("checkpoint manifest " + m.file() + " lists " + Checkpoint.key(p.key(),
                            role) + " of rank " + p.rank() + " as " + Checkpoint.sliceSpec(p.slice()) + " of '" + t.name()
                            + "' " + Arrays.toString(t.shape()) + ", but its file " + (e == null ? "does not hold it"
                            : "holds shape " + Arrays.toString(e.shape())));
                }
            }
        }
        List<Part> owners = t.owners();
        TensorSlice first = owners.isEmpty() ? null : owners.getFirst().slice();
        boolean[] seen = new boolean[first == null ? 0 : first.parts()];
        boolean covered = first != null;
        for (Part p : owners) {
            TensorSlice s = p.slice();
            covered &= s.kind() == first.kind() && s.groups() == first.groups() && s.parts() == first.parts()
                    && !seen[s.part()];
            if (covered) {
                seen[s.part()] = true;
            }
        }
        for (boolean s : seen) {
            covered &= s;
        }
        if (!covered) {
            throw new CheckpointException("checkpoint manifest " + m.file() + " does not cover tensor '" + t.name()
                    + "' exactly once: its owned parts are " + owners.stream()
                    .map(p -> "rank " + p.rank() + " " + Checkpoint.sliceSpec(p.slice())).toList());
        }
    }

    public Path dir() {
        return dir;
    }

    public CheckpointStore.Manifest manifest() {
        return manifest;
    }

    public CheckpointIndex index() {
        return manifest.index();
    }

    /** The model's configuration, as the manifest records it. */
    public GptMoeConfig modelConfig() {
        try {
            return RecordFields.parse(GptMoeConfig.class, index().config());
        } catch (IllegalArgumentException e) {
            throw new CheckpointException("checkpoint manifest " + manifest.file() + " has a model configuration this "
                    + "build cannot read: " + e.getMessage());
        }
    }

    /** The run's training configuration, as the manifest records it. */
    public TrainingConfig trainingConfig() {
        try {
            return RecordFields.parse(TrainingConfig.class, index().training());
        } catch (IllegalArgumentException e) {
            throw new CheckpointException("checkpoint " + manifest.file() + " has a configuration this build cannot read: "
                    + e.getMessage());
        }
    }

    /** Rank r's file header. */
    public Checkpoint.Header header(int rank) {
        return headers.get(rank);
    }

    /** The values of global tensor t's {@code role} ("value", "m" or "v"), assembled from its owners' slices. */
    public float[] read(LogicalTensor t, String role) {
        float[] full = new float[Math.toIntExact(t.numel())];
        for (Part p : t.owners()) {
            p.slice().place(readPart(p, role), full, t.shape());
        }
        return full;
    }

    /**
     * The values of {@code slice} of global tensor t's {@code role}: one owner's part when it holds
     * exactly that slice (a rank of the same cut reads only its own), else cut from the tensor
     * assembled from its owners.
     */
    public float[] read(LogicalTensor t, String role, TensorSlice slice) {
        for (Part p : t.owners()) {
            if (p.slice().equals(slice)) {
                return readPart(p, role);
            }
        }
        return slice.of(read(t, role), t.shape());
    }

    /** The global tensor of that name, or null when the checkpoint holds none. */
    public LogicalTensor tensor(String name) {
        return byName.get(name);
    }

    private float[] readPart(Part p, String role) {
        Checkpoint.Header h = headers.get(p.rank());
        try {
            return h.read(channel(p.rank()), entries.get(p.rank()).get(key(p.key(), role)));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read checkpoint " + h.file() + ": " + e.getMessage(), e);
        }
    }

    /** The global tensors' values, by name. */
    public InitialWeights.Source values() {
        return new InitialWeights.Source() {
            @Override
            public String describe() {
                return "checkpoint " + manifest.file();
            }

            @Override
            public List<String> names() {
                return List.copyOf(byName.keySet());
            }

            @Override
            public int[] shape(String name) {
                LogicalTensor t = byName.get(name);
                return t == null ? null : t.shape();
            }

            @Override
            public float[] read(String name) {
                return WorldCheckpoint.this.read(byName.get(name), "value");
            }
        };
    }

    private FileChannel channel(int rank) throws IOException {
        if (channels[rank] == null) {
            channels[rank] = FileChannel.open(headers.get(rank).file(), StandardOpenOption.READ);
        }
        return channels[rank];
    }

    /**
     * Writes every global tensor's values to a safetensors file in {@code dtype} (F32 or BF16),
     * under its global name, one tensor in memory at a time; {@code __metadata__} records the
     * step, plan, precision and the model and training configuration (as JSON objects). The file
     * appears only once whole.
     */
    public void exportSafetensors(Path file, DType dtype) {
        List<LogicalTensor> tensors = index().tensors();
        List<SafeTensors.Spec> specs = tensors.stream().map(t -> new SafeTensors.Spec(t.name(), dtype, t.shape())).toList();
        SafeTensors.write(file, specs, metadata(), i -> read(tensors.get(i), "value"));
    }

    private Map<String, String> metadata() {
        CheckpointIndex index = index();
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "panamoe");
        meta.put("step", Integer.toString(manifest.step()));
        meta.put("plan", index.plan());
        meta.put("precision", index.precision());
        meta.put("config", Checkpoint.strings(index.config()).toString());
        meta.put("training", Checkpoint.strings(index.training()).toString());
        meta.put("data", index.data());
        return meta;
    }

    @Override
    public void close() {
        for (FileChannel c : channels) {
            try {
                if (c != null) {
                    c.close();
                }
            } catch (IOException ignored) {
                // read-only: nothing is lost by a failed close
            }
        }
    }
}
