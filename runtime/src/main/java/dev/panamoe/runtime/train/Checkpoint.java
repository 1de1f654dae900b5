package dev.panamoe.runtime.train;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.runtime.parallel.TensorSlice;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;

/**
 * The training state of one rank in one file: every parameter with its AdamW moments, the step, the data
 * position, and the model configuration, training configuration and data description they belong
 * to. (The run has no other random state: the corpus draws each sequence from its position, and the
 * model's initialisation from the seed kept in the training configuration.)
 *
 * <p>Layout, little-endian:
 * <pre>
 *   "PMOECKPT"  int32 version  int32 L  header (L bytes of UTF-8 JSON)  int32 crc32c(everything before)
 *   tensor data: for each tensor of the header, in order, numel f32 values
 * </pre>
 * The header lists each tensor's parameter name, role ("value", "m", "v"), shape and the CRC-32C of
 * its bytes, and where it belongs in the logical model ({@link Shard}: "tensor", "full" shape,
 * "slice", "copy"). A file is written to a temporary file in the same directory, fsynced, renamed
 * over the previous checkpoint and the directory fsynced: a crash at any point leaves either the old or the
 * new checkpoint, whole. ({@link CheckpointStore} commits the files of all ranks of a step as one
 * checkpoint.) Reading checks everything — preamble, header checksum, file length, every
 * tensor's checksum, then the model, run, data and tensor shapes against the current run — into
 * temporary buffers, and copies into the model only when all of it passed.
 */
public final class Checkpoint {

    static final int VERSION = 2;
    private static final byte[] MAGIC = "PMOECKPT".getBytes(StandardCharsets.US_ASCII);
    /** Magic, version and header length. */
    private static final int PREAMBLE = MAGIC.length + 8;
    private static final int CRC_BYTES = 4;
    static final List<String> ROLES = List.of("value", "m", "v");

    private Checkpoint() {
    }

    /**
     * What a checkpoint holds, taken from a live run (the tensors are read when written).
     *
     * @param step         optimizer steps done
     * @param dataPosition position of the next training sequence in the corpus
     * @param model        the model configuration's fields
     * @param training     the training configuration's fields
     * @param data         the corpus description
     * @param states       the parameters and their moments, in the model's order
     * @param shards       where each state's tensors belong in the logical model, in the same order
     */
    public record Snapshot(int step, long dataPosition, Map<String, String> model, Map<String, String> training,
            String data, List<AdamW.State> states, List<Shard> shards) {
        public Snapshot {
            if (shards.size() != states.size()) {
                throw new IllegalArgumentException("shards: " + shards.size() + " for " + states.size() + " states");
            }
        }

        /** A snapshot of a model held whole: every parameter is its own global tensor. */
        public Snapshot(int step, long dataPosition, Map<String, String> model, Map<String, String> training,
                String data, List<AdamW.State> states) {
            this(step, dataPosition, model, training, data, states,
                    states.stream().map(s -> Shard.whole(s.parameter())).toList());
        }
    }

    /**
     * Where a tensor of a rank file belongs in the logical model: the slice it holds of the global
     * tensor named {@code tensor} (of {@code fullShape}), and whether it is a copy whose training
     * state is another slot's (a placement replica of an expert: its values equal the expert's, its
     * moments are unused). A free expert slot belongs to no tensor: {@code tensor} null.
     */
    public record Shard(String tensor, int[] fullShape, TensorSlice slice, boolean copy) {
        public Shard {
            slice = slice.parts() == 1 ? TensorSlice.WHOLE : slice; // one part of one: the whole tensor
        }

        public static Shard whole(Parameter p) {
            return new Shard(p.name(), p.value().shape(), TensorSlice.WHOLE, false);
        }
    }

    /**
     * One tensor of a file: its parameter, role, shape, checksum, place in the logical model, and
     * the offset of its data in the file.
     */
    public record Entry(String name, String role, int[] shape, int crc, Shard shard, long offset) {
        long bytes() {
            long n = Float.BYTES;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }

        String label() {
            return key(name, role);
        }
    }

    static String key(String name, String role) {
        return "'" + name + "' (" + role + ")";
    }

    /** What was written: the file's length and the CRC-32C of all its bytes. */
    public record Written(long bytes, int crc32c) {
    }

    // ---- writing ----

    /** Writes {@code snapshot} to {@code file} atomically, creating its directory if needed. */
    public static Written write(Path file, Snapshot snapshot) {
        List<Entry> entries = new ArrayList<>();
        List<ByteBuffer> data = new ArrayList<>();
        for (int i = 0; i < snapshot.states().size(); i++) {
            AdamW.State s = snapshot.states().get(i);
            String name = s.parameter().name();
            Tensor[] tensors = tensorsOf(s);
            for (int r = 0; r < ROLES.size(); r++) {
                ByteBuffer bytes = littleEndianBytes(tensors[r]);
                entries.add(new Entry(name, ROLES.get(r), tensors[r].shape(), crc(bytes), snapshot.shards().get(i), 0));
                data.add(bytes);
            }
        }
        byte[] header = header(snapshot, entries).toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer preamble = ByteBuffer.allocate(PREAMBLE + header.length + CRC_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        preamble.put(MAGIC).putInt(VERSION).putInt(header.length).put(header);
        preamble.putInt(crc(ByteBuffer.wrap(preamble.array(), 0, preamble.position())));
        preamble.flip();
        CRC32C whole = new CRC32C();
        long bytes = preamble.remaining();
        whole.update(preamble.duplicate());
        for (ByteBuffer b : data) {
            whole.update(b.duplicate());
            bytes += b.remaining();
        }
        writeAtomically(file, "checkpoint", channel -> {
            writeFully(channel, preamble);
            for (ByteBuffer b : data) {
                writeFully(channel, b);
            }
        });
        return new Written(bytes, (int) whole.getValue());
    }

    /** A parameter's tensors in the order of {@link #ROLES}. */
    private static Tensor[] tensorsOf(AdamW.State s) {
        return new Tensor[] {s.parameter().value(), s.m(), s.v()};
    }

    private static JsonObject header(Snapshot s, List<Entry> entries) {
        JsonObject h = new JsonObject();
        h.addProperty("step", s.step());
        h.addProperty("dataPosition", s.dataPosition());
        h.add("model", strings(s.model()));
        h.add("training", strings(s.training()));
        h.addProperty("data", s.data());
        JsonArray tensors = new JsonArray();
        for (Entry e : entries) {
            JsonObject t = new JsonObject();
            t.addProperty("name", e.name());
            t.addProperty("role", e.role());
            t.add("shape", shape(e.shape()));
            t.addProperty("crc32c", Integer.toUnsignedLong(e.crc()));
            if (e.shard().tensor() != null) {
                t.addProperty("tensor", e.shard().tensor());
            }
            t.add("full", shape(e.shard().fullShape()));
            t.addProperty("slice", sliceSpec(e.shard().slice()));
            t.addProperty("copy", e.shard().copy());
            tensors.add(t);
        }
        h.add("tensors", tensors);
        return h;
    }

    static JsonArray shape(int[] shape) {
        JsonArray a = new JsonArray();
        for (int d : shape) {
            a.add(d);
        }
        return a;
    }

    /** "whole", "rows P/N", "columns P/N", or "columns P/N of G groups" (the heads of q, k and v: G = 3). */
    public static String sliceSpec(TensorSlice slice) {
        return switch (slice.kind()) {
            case WHOLE -> "whole";
            case ROWS -> "rows " + slice.part() + "/" + slice.parts();
            case COLUMNS -> "columns " + slice.part() + "/" + slice.parts()
                    + (slice.groups() == 1 ? "" : " of " + slice.groups() + " groups");
        };
    }

    private static final Pattern SLICE = Pattern.compile("(rows|columns) (\\d+)/(\\d+)(?: of (\\d+) groups)?");

    /** The slice {@link #sliceSpec} wrote; null when the text is not one. */
    static TensorSlice parseSlice(String spec) {
        if (spec.equals("whole")) {
            return TensorSlice.WHOLE;
        }
        Matcher m = SLICE.matcher(spec);
        if (!m.matches() || m.group(2).length() > 9 || m.group(3).length() > 9
                || m.group(4) != null && m.group(4).length() > 9) {
            return null;
        }
        int part = Integer.parseInt(m.group(2));
        int parts = Integer.parseInt(m.group(3));
        int groups = m.group(4) == null ? 1 : Integer.parseInt(m.group(4));
        if (groups < 1 || parts < 1 || part >= parts || m.group(1).equals("rows") && groups != 1) {
            return null;
        }
        return new TensorSlice(m.group(1).equals("rows") ? TensorSlice.Kind.ROWS : TensorSlice.Kind.COLUMNS, groups,
                part, parts);
    }

    static JsonObject strings(Map<String, String> map) {
        JsonObject o = new JsonObject();
        map.forEach(o::addProperty);
        return o;
    }

    private static ByteBuffer littleEndianBytes(Tensor t) {
        float[] values = t.toFloatArray();
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(values.length, Float.BYTES)).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return b;
    }

    private static int crc(ByteBuffer bytes) {
        CRC32C crc = new CRC32C();
        crc.update(bytes.duplicate());
        return (int) crc.getValue();
    }

    /** Writes the body of a file. */
    @FunctionalInterface
    interface Body {
        void writeTo(FileChannel channel) throws IOException;
    }

    /**
     * Writes {@code file} through a temporary file in its directory: write, fsync, rename over
     * {@code file}, fsync the directory. Temporary files left by a writer that crashed are removed
     * first; a failure removes this writer's temporary file and leaves {@code file} as it was.
     */
    static void writeAtomically(Path file, String what, Body body) {
        Path dir = file.toAbsolutePath().getParent();
        String prefix = "." + file.getFileName() + ".";
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            deleteTemporaryFiles(dir, prefix);
            tmp = Files.createTempFile(dir, prefix, ".tmp");
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                body.writeTo(channel);
                channel.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            tmp = null;
            try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
                d.force(true); // makes the rename itself durable
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + what + " " + file + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the write already failed; its error is the one to report
                }
            }
        }
    }

    private static void deleteTemporaryFiles(Path dir, String prefix) throws IOException {
        try (DirectoryStream<Path> stale = Files.newDirectoryStream(dir, prefix + "*.tmp")) {
            for (Path p : stale) {
                Files.deleteIfExists(p);
            }
        }
    }

    static void writeFully(FileChannel channel, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            channel.write(b);
        }
    }

    // ---- reading ----

    /**
     * The header of a rank file whose format and header checksum were checked: what the file holds
     * and where each tensor's data is, without the data.
     */
    public record Header(Path file, int step, long dataPosition, Map<String, String> model,
            Map<String, String> training, String data, List<Entry> entries) {

        /**
         * Reads one tensor's values from this file (open as {@code channel}), checked against its checksum.
         *
         * @throws CheckpointException naming the file and tensor when the bytes fail it
         */
        public float[] read(FileChannel channel, Entry e) throws IOException {
            return readTensor(file, channel, e);
        }
    }

    /**
     * A checkpoint read from a file whose integrity was checked (format, checksums, length); its
     * tensors are held in memory until {@link #restore} copies them into a run.
     */
    public static final class Loaded {
        private final Header header;
        private final List<float[]> values;

        private Loaded(Header header, List<float[]> values) {
            this.header = header;
            this.values = values;
        }

        public Path file() {
            return header.file();
        }

        public int step() {
            return header.step();
        }

        public long dataPosition() {
            return header.dataPosition();
        }

        public Map<String, String> model() {
            return header.model();
        }

        public Map<String, String> training() {
            return header.training();
        }

        public String data() {
            return header.data();
        }

        /**
         * Checks that this checkpoint belongs to the run {@code current} describes — the same model
         * configuration, the same trajectory fields of the training configuration
         * ({@link TrainingConfig#TRAJECTORY_FIELDS}), the same data, the same tensors with the same
         * shapes — and only then copies every parameter and moment into {@code current}'s tensors.
         *
         * @throws CheckpointException listing what differs; nothing is copied then
         */
        public void restore(Snapshot current) {
            List<String> problems = new ArrayList<>();
            compare("model", model(), current.model(), current.model().keySet(), problems);
            compare("training", training(), current.training(), TrainingConfig.TRAJECTORY_FIELDS, problems);
            if (!data().equals(current.data())) {
                problems.add("data '" + data() + "' in the checkpoint, '" + current.data() + "' here");
            }
            List<Tensor> targets = compareTensors(current.states(), problems);
            if (!problems.isEmpty()) {
                throw new CheckpointException("checkpoint " + file() + " does not match this run: "
                        + String.join("; ", problems));
            }
            for (int i = 0; i < targets.size(); i++) {
                targets.get(i).copyFrom(values.get(i));
            }
        }

        static void compare(String what, Map<String, String> stored, Map<String, String> here,
                Iterable<String> keys, List<String> problems) {
            for (String key : keys) {
                String s = stored.get(key);
                String h = here.get(key);
                if (!Objects.equals(s, h)) {
                    problems.add(what + " " + key + " " + (s == null ? "missing" : s) + " in the checkpoint, "
                            + (h == null ? "missing" : h) + " here");
                }
            }
        }

        /**
         * The tensors to copy into, entry by entry. Adds the first few differences to
         * {@code problems}: missing and unexpected tensors first, then shapes, one per parameter
         * (its moments differ with it).
         */
        private List<Tensor> compareTensors(List<AdamW.State> states, List<String> problems) {
            Map<String, Tensor> expected = new LinkedHashMap<>();
            Map<String, String> parameterOf = new HashMap<>();
            for (AdamW.State s : states) {
                String name = s.parameter().name();
                Tensor[] tensors = tensorsOf(s);
                for (int r = 0; r < ROLES.size(); r++) {
                    expected.put(key(name, ROLES.get(r)), tensors[r]);
                    parameterOf.put(key(name, ROLES.get(r)), name);
                }
            }
            List<Tensor> targets = new ArrayList<>();
            Map<String, String> structure = new LinkedHashMap<>();
            Map<String, String> shapes = new LinkedHashMap<>();
            for (Entry e : header.entries()) {
                Tensor t = expected.remove(e.label());
                if (t == null) {
                    structure.putIfAbsent(e.name(), "tensor " + e.label() + " is in the checkpoint but not in this model");
                } else if (!Arrays.equals(t.shape(), e.shape())) {
                    shapes.putIfAbsent(e.name(), "tensor " + e.label() + " has shape " + Arrays.toString(e.shape())
                            + " in the checkpoint, " + Arrays.toString(t.shape()) + " here");
                }
                targets.add(t);
            }
            for (String missing : expected.keySet()) {
                structure.putIfAbsent(parameterOf.get(missing), "tensor " + missing + " of this model is missing from the checkpoint");
            }
            List<String> differences = new ArrayList<>(structure.values());
            differences.addAll(shapes.values());
            int shown = 4;
            problems.addAll(differences.subList(0, Math.min(shown, differences.size())));
            if (differences.size() > shown) {
                problems.add("and " + (differences.size() - shown) + " more tensors differ");
            }
            return targets;
        }
    }

    /**
     * Reads and verifies {@code file}: format, header checksum, length and every tensor's checksum.
     *
     * @throws CheckpointException naming the file and what is wrong with it
     */
    public static Loaded read(Path file) {
        Header header = readHeader(file);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            List<float[]> values = new ArrayList<>(header.entries().size());
            for (Entry e : header.entries()) {
                values.add(readTensor(file, channel, e));
            }
            return new Loaded(header, values);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read checkpoint " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Reads and verifies {@code file}'s header: format, header checksum, and a length that fits
     * the tensors it lists (whose data is not read).
     *
     * @throws CheckpointException naming the file and what is wrong with it
     */
    public static Header readHeader(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new CheckpointException("checkpoint " + file + " does not exist or is not a regular file");
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < PREAMBLE + CRC_BYTES) {
                throw problem(file, "is truncated: " + size + " bytes, less than the " + (PREAMBLE + CRC_BYTES)
                        + " bytes of an empty checkpoint");
            }
            ByteBuffer preamble = readAt(channel, 0, PREAMBLE);
            byte[] magic = new byte[MAGIC.length];
            preamble.get(magic);
            if (!Arrays.equals(magic, MAGIC)) {
                throw problem(file, "is not a PanaMoE checkpoint (it does not start with \"PMOECKPT\")");
            }
            int version = preamble.getInt();
            int headerLength = preamble.getInt();
            if (headerLength < 2 || headerLength > size - PREAMBLE - CRC_BYTES) {
                throw problem(file, "is truncated or corrupted: its header length " + headerLength
                        + " does not fit in its " + size + " bytes");
            }
            ByteBuffer header = readAt(channel, PREAMBLE, headerLength + CRC_BYTES);
            CRC32C crc = new CRC32C();
            crc.update(preamble.array());
            crc.update(header.array(), 0, headerLength);
            int stored = header.getInt(headerLength);
            if (stored != (int) crc.getValue()) {
                throw problem(file, String.format("is corrupted: its header fails its checksum (stored crc32c %08x, "
                        + "computed %08x)", stored, (int) crc.getValue()));
            }
            if (version != VERSION) {
                throw problem(file, "has format version " + version + "; this build reads version " + VERSION);
            }
            JsonObject h = parseHeader(file, new String(header.array(), 0, headerLength, StandardCharsets.UTF_8));
            List<Entry> entries = entries(file, h, PREAMBLE + headerLength + CRC_BYTES);
            checkLength(file, size, PREAMBLE + headerLength + CRC_BYTES, entries);
            return new Header(file, intField(file, h, "step"), longField(file, h, "dataPosition"),
                    stringMap(file, h, "model"), stringMap(file, h, "training"), stringField(file, h, "data"),
                    List.copyOf(entries));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read checkpoint " + file + ": " + e.getMessage(), e);
        }
    }

    private static void checkLength(Path file, long size, long dataStart, List<Entry> entries) {
        long end = dataStart;
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            if (end + e.bytes() > size) {
                throw problem(file, "is truncated: " + size + " bytes, but its header describes "
                        + (dataStart + entries.stream().mapToLong(Entry::bytes).sum()) + "; tensor " + e.label()
                        + (i + 1 < entries.size() ? " and the " + (entries.size() - i - 1) + " after it are" : " is")
                        + " incomplete");
            }
            end += e.bytes();
        }
        if (end != size) {
            throw problem(file, "is corrupted: " + (size - end) + " unexpected bytes after its last tensor");
        }
    }

    private static float[] readTensor(Path file, FileChannel channel, Entry e) throws IOException {
        ByteBuffer bytes = readAt(channel, e.offset(), Math.toIntExact(e.bytes()));
        int computed = crc(bytes);
        if (computed != e.crc()) {
            throw problem(file, String.format("is corrupted: tensor %s fails its checksum (stored crc32c %08x, "
                    + "computed %08x)", e.label(), e.crc(), computed));
        }
        float[] values = new float[Math.toIntExact(e.bytes() / Float.BYTES)];
        bytes.order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
        return values;
    }

    static ByteBuffer readAt(FileChannel channel, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            if (channel.read(b, offset + b.position()) < 0) {
                throw new IOException("unexpected end of file at byte " + (offset + b.position()));
            }
        }
        return b.flip();
    }

    private static JsonObject parseHeader(Path file, String text) {
        try {
            return JsonParser.parseString(text).getAsJsonObject();
        } catch (RuntimeException e) { // Gson reports a malformed document with several unchecked types
            throw problem(file, "has a header that is not a JSON object: " + e.getMessage());
        }
    }

    /** The header's tensors, their data laid out in order from dataStart. */
    private static List<Entry> entries(Path file, JsonObject h, long dataStart) {
        List<Entry> entries = new ArrayList<>();
        long offset = dataStart;
        for (JsonElement element : array(file, h, "tensors")) {
            JsonObject t = element.getAsJsonObject();
            String name = stringField(file, t, "name");
            String role = stringField(file, t, "role");
            if (!ROLES.contains(role)) {
                throw problem(file, "has a tensor of unknown role '" + role + "'");
            }
            int[] shape = shapeField(file, t, "shape");
            int[] full = shapeField(file, t, "full");
            TensorSlice slice = parseSlice(stringField(file, t, "slice"));
            JsonElement tensor = t.get("tensor");
            if (slice == null || !Arrays.equals(sliceShape(slice, full), shape)) {
                throw problem(file, "has tensor " + key(name, role) + " of shape " + Arrays.toString(shape)
                        + " that is not slice '" + stringField(file, t, "slice") + "' of " + Arrays.toString(full));
            }
            Shard shard = new Shard(tensor == null ? null : tensor.getAsString(), full, slice,
                    field(file, t, "copy").getAsBoolean());
            Entry e = new Entry(name, role, shape, (int) longField(file, t, "crc32c"), shard, offset);
            entries.add(e);
            offset += e.bytes();
        }
        return entries;
    }

    private static int[] shapeField(Path file, JsonObject t, String name) {
        JsonArray shapeJson = array(file, t, name);
        int[] shape = dims(shapeJson);
        if (shape == null) {
            throw problem(file, "has a tensor of negative dimension: " + shapeJson);
        }
        return shape;
    }

    /** A JSON array of dimensions; null when one is negative. */
    static int[] dims(JsonArray a) {
        int[] shape = new int[a.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = a.get(i).getAsInt();
            if (shape[i] < 0) {
                return null;
            }
        }
        return shape;
    }

    /** The slice's shape, or null when it does not divide the full shape. */
    private static int[] sliceShape(TensorSlice slice, int[] full) {
        if (full.length == 0 && slice.kind() != TensorSlice.Kind.WHOLE) {
            return null;
        }
        try {
            return slice.shape(full);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static JsonElement field(Path file, JsonObject o, String name) {
        JsonElement e = o.get(name);
        if (e == null || e.isJsonNull()) {
            throw problem(file, "has a header without the field '" + name + "'");
        }
        return e;
    }

    private static JsonArray array(Path file, JsonObject o, String name) {
        return field(file, o, name).getAsJsonArray();
    }

    private static String stringField(Path file, JsonObject o, String name) {
        return field(file, o, name).getAsString();
    }

    private static long longField(Path file, JsonObject o, String name) {
        return field(file, o, name).getAsLong();
    }

    private static int intField(Path file, JsonObject o, String name) {
        return field(file, o, name).getAsInt();
    }

    private static Map<String, String> stringMap(Path file, JsonObject o, String name) {
        Map<String, String> map = new LinkedHashMap<>();
        for (Map.Entry<String, JsonElement> e : field(file, o, name).getAsJsonObject().entrySet()) {
            map.put(e.getKey(), ((JsonPrimitive) e.getValue()).getAsString());
        }
        return map;
    }

    private static CheckpointException problem(Path file, String what) {
        return new CheckpointException("checkpoint " + file + " " + what);
    }
}
