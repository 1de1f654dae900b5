package dev.panamoe.runtime.train;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.panamoe.runtime.parallel.TensorSlice;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The logical model of a committed step, as its manifest records it: the run (plan, precision,
 * model and training configuration, data and its position, expert placements) and every global
 * tensor with its shape and, for each rank file that holds part of it, which part. Made by rank 0
 * at commit from every rank file's header ({@link Checkpoint.Shard} per tensor), so it describes
 * what the files hold, not what the plan should have put there.
 *
 * <p>In the manifest ({@link CheckpointStore}):
 * <pre>
 *   "plan": "pp=2,tp=1,ep=2,edp=2" | "single device",   "precision": "f32",
 *   "dataPosition": 1280,   "config": {GptMoeConfig's fields},   "training": {...},   "data": "...",
 *   "placement": {"policy": "smart:2", "layers": ["ExpertPlacement of MoE layer 0", ...]}   (parallel runs)
 *   "roles": ["value", "m", "v"],
 *   "tensors": [{"name": "blocks.1.moe.experts.3.w1", "shape": [64, 256],
 *                "parts": [{"rank": 2, "slice": "columns 0/2", "key": "blocks.1.moe.experts.slot5.w1"},
 *                          {"rank": 6, "slice": "columns 0/2", "copy": true}, ...]}, ...]
 * </pre>
 * A part is a tensor of rank {@code rank}'s file, named {@code key} there (the global name when
 * absent), holding {@code slice} of the global tensor (see {@link Checkpoint#sliceSpec}), with
 * every role's data (parameter values, AdamW moments m and v). Among the parts of a tensor,
 * exactly one per slice is not a {@code copy}: the lowest rank holding that slice as its own
 * state. Copies are data-parallel replicas (the same values and moments), a tied embedding's
 * second stage, and placement replicas of an expert (the same values, moments unused). A rank
 * that needs a slice of a tensor under another plan reads the parts that overlap it, from the
 * files they name. Free expert slots belong to no tensor and are not listed. Tensors are in
 * name order, numbers compared as numbers.
 */
public record CheckpointIndex(String plan, String precision, long dataPosition, Map<String, String> config,
        Map<String, String> training, String data, String placementPolicy, List<String> placements,
        List<String> roles, List<LogicalTensor> tensors) {

    /** What a single device's checkpoint records as its plan. */
    public static final String SINGLE_DEVICE = "single device";
    /** Rank files store f32 values and moments; training runs f32, so the values are the masters. */
    static final String PRECISION = "f32";

    /** Part of a global tensor in one rank file. */
    public record Part(int rank, String key, TensorSlice slice, boolean copy) {
    }

    /** A tensor of the logical model. */
    public record LogicalTensor(String name, int[] shape, List<Part> parts) {
        public long numel() {
            return Arrays.stream(shape).asLongStream().reduce(1, (a, b) -> a * b);
        }

        /** The parts that hold the state, one per slice. */
        public List<Part> owners() {
            return parts.stream().filter(p -> !p.copy()).toList();
        }
    }

    /**
     * The index of the rank files whose headers are given in rank order; rank 0's header gives the
     * run's description.
     *
     * @throws CheckpointException when two files disagree on a tensor's shape
     */
    static CheckpointIndex of(List<Checkpoint.Header> headers) {
        Map<String, int[]> shapes = new TreeMap<>(NAME_ORDER);
        Map<String, List<Part>> parts = new TreeMap<>(NAME_ORDER);
        for (int rank = 0; rank < headers.size(); rank++) {
            for (Checkpoint.Entry e : headers.get(rank).entries()) {
                Checkpoint.Shard shard = e.shard();
                if (!e.role().equals("value") || shard.tensor() == null) {
                    continue;
                }
                int[] known = shapes.putIfAbsent(shard.tensor(), shard.fullShape());
                if (known != null && !Arrays.equals(known, shard.fullShape())) {
                    throw new CheckpointException("checkpoint " + headers.get(rank).file() + " holds tensor '"
                            + shard.tensor() + "' of shape " + Arrays.toString(shard.fullShape()) + ", other ranks' "
                            + Arrays.toString(known));
                }
                List<Part> list = parts.computeIfAbsent(shard.tensor(), k -> new ArrayList<>());
                boolean owned = list.stream().anyMatch(p -> !p.copy() && p.slice().equals(shard.slice()));
                list.add(new Part(rank, e.name(), shard.slice(), shard.copy() || owned));
            }
        }
        List<LogicalTensor> tensors = new ArrayList<>();
        parts.forEach((name, list) -> tensors.add(new LogicalTensor(name, shapes.get(name), List.copyOf(list))));
        Checkpoint.Header first = headers.getFirst();
        Map<String, String> model = first.model();
        String plan = model.get("plan");
        List<String> placements = new ArrayList<>();
        for (int l = 0; model.containsKey("placement " + l); l++) {
            placements.add(model.get("placement " + l));
        }
        return new CheckpointIndex(plan == null ? SINGLE_DEVICE : plan, PRECISION, first.dataPosition(),
                plan == null ? model : RecordFields.fromToString(model.get("model")), first.training(), first.data(),
                model.get("placement policy"), placements, List.copyOf(Checkpoint.ROLES), tensors);
    }

    /**
     * Names compare segment by segment ("blocks.2.ln1.weight" split at the dots), numbers as
     * numbers: blocks.2 before blocks.10, experts.9 before experts.10.
     */
    static final Comparator<String> NAME_ORDER = (a, b) -> {
        String[] x = a.split("\\.");
        String[] y = b.split("\\.");
        for (int i = 0; i < Math.min(x.length, y.length); i++) {
            boolean numbers = x[i].matches("\\d{1,9}") && y[i].matches("\\d{1,9}");
            int c = numbers ? Integer.compare(Integer.parseInt(x[i]), Integer.parseInt(y[i])) : x[i].compareTo(y[i]);
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(x.length, y.length);
    };

    /** Adds this index's fields to a manifest. */
    void addTo(JsonObject manifest) {
        manifest.addProperty("plan", plan);
        manifest.addProperty("precision", precision);
        manifest.addProperty("dataPosition", dataPosition);
        manifest.add("config", Checkpoint.strings(config));
        manifest.add("training", Checkpoint.strings(training));
        manifest.addProperty("data", data);
        if (placementPolicy != null) {
            JsonObject p = new JsonObject();
            p.addProperty("policy", placementPolicy);
            JsonArray layers = new JsonArray();
            placements.forEach(layers::add);
            p.add("layers", layers);
            manifest.add("placement", p);
        }
        JsonArray roleArray = new JsonArray();
        roles.forEach(roleArray::add);
        manifest.add("roles", roleArray);
        JsonArray list = new JsonArray();
        for (LogicalTensor t : tensors) {
            JsonObject o = new JsonObject();
            o.addProperty("name", t.name());
            o.add("shape", Checkpoint.shape(t.shape()));
            JsonArray partArray = new JsonArray();
            for (Part p : t.parts()) {
                JsonObject j = new JsonObject();
                j.addProperty("rank", p.rank());
                j.addProperty("slice", Checkpoint.sliceSpec(p.slice()));
                if (!p.key().equals(t.name())) {
                    j.addProperty("key", p.key());
                }
                if (p.copy()) {
                    j.addProperty("copy", true);
                }
                partArray.add(j);
            }
            o.add("parts", partArray);
            list.add(o);
        }
        manifest.add("tensors", list);
    }

    /**
     * The index a manifest holds. Throws an unchecked exception (Gson's, or IllegalArgumentException)
     * on a malformed one; the caller reports it naming the manifest.
     */
    static CheckpointIndex from(JsonObject m, int world) {
        List<LogicalTensor> tensors = new ArrayList<>();
        for (JsonElement e : m.getAsJsonArray("tensors")) {
            JsonObject o = e.getAsJsonObject();
            String name = o.get("name").getAsString();
            int[] shape = Checkpoint.dims(o.getAsJsonArray("shape"));
            if (shape == null) {
                throw new IllegalArgumentException("tensor '" + name + "' has a negative dimension");
            }
            List<Part> parts = new ArrayList<>();
            for (JsonElement pe : o.getAsJsonArray("parts")) {
                JsonObject p = pe.getAsJsonObject();
                int rank = p.get("rank").getAsInt();
                TensorSlice slice = Checkpoint.parseSlice(p.get("slice").getAsString());
                if (rank < 0 || rank >= world || slice == null) {
                    throw new IllegalArgumentException("tensor '" + name + "' has a part " + p + " of no rank of "
                            + world + " or of no slice");
                }
                parts.add(new Part(rank, p.has("key") ? p.get("key").getAsString() : name, slice,
                        p.has("copy") && p.get("copy").getAsBoolean()));
            }
            tensors.add(new LogicalTensor(name, shape, List.copyOf(parts)));
        }
        JsonObject placement = m.getAsJsonObject("placement");
        List<String> placements = new ArrayList<>();
        if (placement != null) {
            placement.getAsJsonArray("layers").forEach(l -> placements.add(l.getAsString()));
        }
        List<String> roles = new ArrayList<>();
        m.getAsJsonArray("roles").forEach(r -> roles.add(r.getAsString()));
        return new CheckpointIndex(m.get("plan").getAsString(), m.get("precision").getAsString(),
                m.get("dataPosition").getAsLong(), stringMap(m.getAsJsonObject("config")),
                stringMap(m.getAsJsonObject("training")), m.get("data").getAsString(),
                placement == null ? null : placement.get("policy").getAsString(), List.copyOf(placements),
                List.copyOf(roles), List.copyOf(tensors));
    }

    private static Map<String, String> stringMap(JsonObject o) {
        Map<String, String> map = new LinkedHashMap<>();
        o.entrySet().forEach(e -> map.put(e.getKey(), e.getValue().getAsString()));
        return map;
    }
}
