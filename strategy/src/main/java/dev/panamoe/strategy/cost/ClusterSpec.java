package dev.panamoe.strategy.cost;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The machines a plan runs on, as the cost model sees them: {@code gpus} devices in nodes of
 * {@code gpusPerNode}; two topology levels — inside a node (NVLink, or shared memory for the
 * in-JVM world) and between nodes (InfiniBand) — each with a per-device bandwidth and a
 * per-message latency; per device a sustained GEMM rate, a memory bandwidth (for expert GEMMs
 * too small to be compute-bound) and usable memory. Rank r lives on node r / gpusPerNode.
 *
 * <p>Rates are what a device sustains, not datasheet peaks. Bandwidths are per device and per
 * direction: a device's intra-node and inter-node traffic use different links (NVLink vs its own
 * NIC), so the two levels overlap.
 *
 * @param name             preset name or "custom"
 * @param gpus             devices in the cluster
 * @param gpusPerNode      devices per node, divides gpus (a cluster smaller than a node is one node)
 * @param intraBandwidth   bytes/s one device sends (and receives) inside its node
 * @param intraLatency     seconds per message inside a node
 * @param interBandwidth   bytes/s one device sends (and receives) to other nodes
 * @param interLatency     seconds per message between nodes
 * @param deviceFlops      sustained GEMM FLOP/s of one device
 * @param memoryBandwidth  bytes/s of one device's memory (bounds GEMMs over few rows)
 * @param memoryBytes      usable memory of one device (after the framework's own reserve)
 * @param elementBytes     bytes of a parameter, gradient and activation element (2 = bf16
 *                         with an f32 master copy, 4 = f32)
 */
public record ClusterSpec(String name, int gpus, int gpusPerNode, double intraBandwidth, double intraLatency,
        double interBandwidth, double interLatency, double deviceFlops, double memoryBandwidth, double memoryBytes,
        int elementBytes) {

    private static final double GB = 1e9;
    private static final double GIB = 1024.0 * 1024 * 1024;

    /**
     * The presets. Rates are sustained values, about 75% of the datasheet peaks:
     * <ul>
     * <li>{@code h100-nvlink-ib}: DGX H100 — 8 GPUs per node, NVLink 4 (450 GB/s per direction,
     * 3 us), one 400 Gb/s NDR NIC per GPU (40 GB/s achieved, 10 us), 750 TFLOP/s bf16 GEMM
     * (989 peak), 3.0 TB/s HBM3, 72 GiB usable of 80, bf16;</li>
     * <li>{@code a100-nvlink-ib}: DGX A100 — 8 per node, NVLink 3 (240 GB/s, 3 us), 200 Gb/s
     * HDR per GPU (20 GB/s, 10 us), 230 TFLOP/s bf16 (312 peak), 1.8 TB/s, 72 GiB of 80, bf16;</li>
     * <li>{@code v100-pcie-eth}: SmartMoE-era nodes — 8 per node, PCIe 3 (10 GB/s, 10 us),
     * 100 Gb/s Ethernet shared by the node (1.5 GB/s per GPU, 30 us), 90 TFLOP/s fp16, 0.8 TB/s,
     * 30 GiB of 32, 2-byte elements;</li>
     * <li>{@code cpu}: the in-JVM world on this machine — every rank a thread of one process
     * (one node), sharing the machine's cores: 170 GFLOP/s and 20 GB/s copy bandwidth for the
     * whole machine, divided among the ranks; 5 us per message; 16 GiB shared; f32. Calibrate
     * it from the JMH results (see {@link Calibration}).</li>
     * </ul>
     */
    public static final List<String> PRESETS = List.of("h100-nvlink-ib", "a100-nvlink-ib", "v100-pcie-eth", "cpu");

    public ClusterSpec {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("name: must not be empty");
        }
        positive("gpus", gpus);
        positive("gpusPerNode", gpusPerNode);
        if (gpus > gpusPerNode && gpus % gpusPerNode != 0) {
            throw new IllegalArgumentException("gpusPerNode: " + gpusPerNode + " does not divide gpus " + gpus);
        }
        positive("intraBandwidth", intraBandwidth);
        nonNegative("intraLatency", intraLatency);
        positive("interBandwidth", interBandwidth);
        nonNegative("interLatency", interLatency);
        positive("deviceFlops", deviceFlops);
        positive("memoryBandwidth", memoryBandwidth);
        positive("memoryBytes", memoryBytes);
        if (elementBytes != 2 && elementBytes != 4) {
            throw new IllegalArgumentException("elementBytes: must be 2 (bf16) or 4 (f32), got " + elementBytes);
        }
    }

    /** A preset (see {@link #PRESETS}) for gpus devices, gpusPerNode per node. */
    public static ClusterSpec preset(String name, int gpus, int gpusPerNode) {
        return switch (name) {
            case "h100-nvlink-ib" -> new ClusterSpec(name, gpus, gpusPerNode, 450 * GB, 3e-6, 40 * GB, 10e-6, 750e12,
                    3000 * GB, 72 * GIB, 2);
            case "a100-nvlink-ib" -> new ClusterSpec(name, gpus, gpusPerNode, 240 * GB, 3e-6, 20 * GB, 10e-6, 230e12,
                    1800 * GB, 72 * GIB, 2);
            case "v100-pcie-eth" -> new ClusterSpec(name, gpus, gpusPerNode, 10 * GB, 10e-6, 1.5 * GB, 30e-6, 90e12,
                    800 * GB, 30 * GIB, 2);
            case "cpu" -> cpu(gpus, 170e9, 20 * GB);
            case null, default -> throw new IllegalArgumentException("cluster: unknown preset '" + name + "'; known: "
                    + String.join(", ", PRESETS));
        };
    }

    /**
     * The in-JVM world: ranks threads of one process on one node, sharing a machine that runs
     * GEMMs at machineFlops and copies at machineCopyBandwidth bytes/s (each rank gets 1/ranks).
     */
    public static ClusterSpec cpu(int ranks, double machineFlops, double machineCopyBandwidth) {
        positive("ranks", ranks);
        double perRankCopy = machineCopyBandwidth / ranks;
        return new ClusterSpec("cpu", ranks, ranks, perRankCopy, 5e-6, perRankCopy, 5e-6, machineFlops / ranks,
                perRankCopy, 16 * GIB / ranks, 4);
    }

    /**
     * Parses the {@code --cluster} value: a preset name, optionally followed by ':' and
     * comma-separated overrides ({@code h100-nvlink-ib:inter-bw=25e9,memory-gib=40}), or the
     * overrides alone on top of h100-nvlink-ib, or a JSON object (text starting with '{') with
     * the same keys plus "preset", or the name of a file holding such an object (a path that
     * exists, or ends in .json). Keys: intra-bw, intra-lat, inter-bw, inter-lat (bytes/s,
     * seconds), flops, mem-bw, memory-gib, element-bytes. gpus and gpusPerNode come from the
     * command line's own options.
     */
    public static ClusterSpec parse(String spec, int gpus, int gpusPerNode) {
        if (spec == null || spec.isBlank()) {
            return preset("h100-nvlink-ib", gpus, gpusPerNode);
        }
        String s = spec.strip();
        if (!s.startsWith("{") && (s.endsWith(".json") || Files.isRegularFile(Path.of(s)))) {
            try {
                s = Files.readString(Path.of(s)).strip();
            } catch (IOException e) {
                throw new IllegalArgumentException("cluster: cannot read " + spec + ": "
                        + (e instanceof NoSuchFileException ? "no such file" : e.getMessage()), e);
            }
            if (!s.startsWith("{")) {
                throw new IllegalArgumentException("cluster: " + spec + " does not hold a JSON object");
            }
        }
        Map<String, String> overrides = new LinkedHashMap<>();
        String preset = "h100-nvlink-ib";
        if (s.startsWith("{")) {
            JsonObject o;
            try {
                o = new Gson().fromJson(s, JsonObject.class);
            } catch (JsonParseException e) {
                throw new IllegalArgumentException("cluster: not valid JSON: " + e.getMessage(), e);
            }
            for (String key : o.keySet()) {
                if (key.equals("preset")) {
                    preset = o.get(key).getAsString();
                } else {
                    overrides.put(key, o.get(key).getAsString());
                }
            }
        } else {
            int colon = s.indexOf(':');
            String head = colon >= 0 ? s.substring(0, colon) : s;
            String rest = colon >= 0 ? s.substring(colon + 1) : "";
            if (head.contains("=")) {
                rest = s;
            } else {
                preset = head.strip();
            }
            for (String part : rest.split(",")) {
                if (part.isBlank()) {
                    continue;
                }
                int eq = part.indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("cluster: \"" + part + "\" in \"" + spec + "\" is not key=value");
                }
                overrides.put(part.substring(0, eq).strip().toLowerCase(Locale.ROOT), part.substring(eq + 1).strip());
            }
        }
        ClusterSpec c = preset(preset, gpus, gpusPerNode);
        return overrides.isEmpty() ? c : c.with(overrides);
    }

    private ClusterSpec with(Map<String, String> overrides) {
        double intraBw = intraBandwidth, intraLat = intraLatency, interBw = interBandwidth, interLat = interLatency;
        double flops = deviceFlops, memBw = memoryBandwidth, memory = memoryBytes;
        int element = elementBytes;
        for (Map.Entry<String, String> o : overrides.entrySet()) {
            double v = number(o.getKey(), o.getValue());
            inRange(o.getKey(), v, o.getValue());
            switch (o.getKey()) {
                case "intra-bw" -> intraBw = v;
                case "intra-lat" -> intraLat = v;
                case "inter-bw" -> interBw = v;
                case "inter-lat" -> interLat = v;
                case "flops" -> flops = v;
                case "mem-bw" -> memBw = v;
                case "memory-gib" -> memory = v * GIB;
                case "element-bytes" -> element = (int) v;
                default -> throw new IllegalArgumentException("cluster: unknown key \"" + o.getKey()
                        + "\" (expected intra-bw, intra-lat, inter-bw, inter-lat, flops, mem-bw, memory-gib,"
                        + " element-bytes)");
            }
        }
        return new ClusterSpec(name + "+custom", gpus, gpusPerNode, intraBw, intraLat, interBw, interLat, flops, memBw,
                memory, element);
    }

    /** The same cluster with another device GEMM rate (calibration). */
    public ClusterSpec withDeviceFlops(double flops) {
        return new ClusterSpec(name, gpus, gpusPerNode, intraBandwidth, intraLatency, interBandwidth, interLatency,
                flops, memoryBandwidth, memoryBytes, elementBytes);
    }

    /** The same cluster with another intra-node bandwidth (calibration). */
    public ClusterSpec withIntraBandwidth(double bytesPerSecond) {
        return new ClusterSpec(name, gpus, gpusPerNode, bytesPerSecond, intraLatency, interBandwidth, interLatency,
                deviceFlops, memoryBandwidth, memoryBytes, elementBytes);
    }

    /** The same machines with a different device count (the search's world). */
    public ClusterSpec withGpus(int newGpus) {
        return new ClusterSpec(name, newGpus, Math.min(gpusPerNode, newGpus), intraBandwidth, intraLatency,
                interBandwidth, interLatency, deviceFlops, memoryBandwidth, memoryBytes, elementBytes);
    }

    public int node(int rank) {
        return rank / gpusPerNode;
    }

    public boolean sameNode(int rankA, int rankB) {
        return rankA / gpusPerNode == rankB / gpusPerNode;
    }

    /** One line for the CLI. */
    public String describe() {
        return String.format(Locale.ROOT,
                "%s: %d devices, %d per node; intra-node %.3g GB/s, %.1f us; inter-node %.3g GB/s, %.1f us;"
                        + " %s, %.0f GB/s memory, %.1f GiB per device; %d-byte elements",
                name, gpus, gpusPerNode, intraBandwidth / GB, intraLatency * 1e6, interBandwidth / GB,
                interLatency * 1e6, rate(deviceFlops), memoryBandwidth / GB, memoryBytes / GIB, elementBytes);
    }

    private static String rate(double flops) {
        return flops >= 1e12 ? String.format(Locale.ROOT, "%.4g TFLOP/s", flops / 1e12)
                : String.format(Locale.ROOT, "%.4g GFLOP/s", flops / 1e9);
    }

    private static double number(String key, String value) {
        try {
            return Double.parseDouble(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("cluster: value \"" + value + "\" of " + key + " is not a number");
        }
    }

    /**
     * The range an override may take: outside it some derived time (bytes over a bandwidth, a
     * latency per peer, FLOPs over a rate, summed over a step) stops being a finite number.
     */
    private static void inRange(String key, double v, String text) {
        String[] range = switch (key) {
            case "intra-bw", "inter-bw", "mem-bw" -> new String[] {"1", "1e18"};
            case "flops" -> new String[] {"1", "1e21"};
            case "intra-lat", "inter-lat" -> new String[] {"0", "3600"};
            case "memory-gib" -> new String[] {"1e-6", "1e9"};
            default -> null;
        };
        if (range != null && !(v >= Double.parseDouble(range[0]) && v <= Double.parseDouble(range[1]))) {
            throw new IllegalArgumentException("cluster: " + key + " must be between " + range[0] + " and " + range[1]
                    + ", got " + text);
        }
    }

    private static void positive(String name, double v) {
        if (!(v > 0) || Double.isInfinite(v)) {
            throw new IllegalArgumentException(name + ": must be a finite number > 0, got " + v);
        }
    }

    private static void nonNegative(String name, double v) {
        if (!(v >= 0) || Double.isInfinite(v)) {
            throw new IllegalArgumentException(name + ": must be a finite number >= 0, got " + v);
        }
    }
}
