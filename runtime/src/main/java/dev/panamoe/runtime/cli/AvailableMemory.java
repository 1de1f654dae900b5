package dev.panamoe.runtime.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * How much more memory this process can have: the machine's MemAvailable (/proc/meminfo), or
 * less where the process's memory cgroup (v2 memory.max, v1 memory.limit_in_bytes) leaves less
 * room above its current usage. The JVM's max heap does not bound it: tensors are native memory.
 *
 * @param bytes  what the process can still allocate
 * @param source where the number comes from, for messages
 */
record AvailableMemory(long bytes, String source) {

    /** This machine's, from /proc and /sys/fs/cgroup. */
    static AvailableMemory host() {
        return read(Path.of("/proc"), Path.of("/sys/fs/cgroup"));
    }

    /** The same from the files under proc and cgroupRoot (a test's copies). */
    static AvailableMemory read(Path proc, Path cgroupRoot) {
        long available = meminfo(proc.resolve("meminfo"), "MemAvailable:")
                .orElseThrow(() -> new IllegalStateException("no MemAvailable line in " + proc.resolve("meminfo")));
        AvailableMemory best = new AvailableMemory(available, "MemAvailable in " + proc.resolve("meminfo"));
        for (Path[] limitAndUsage : cgroupFiles(proc.resolve("self/cgroup"), cgroupRoot)) {
            OptionalLong limit = number(limitAndUsage[0]);
            OptionalLong usage = number(limitAndUsage[1]);
            if (limit.isPresent() && usage.isPresent()) {
                long room = Math.max(0, limit.getAsLong() - usage.getAsLong());
                if (room < best.bytes()) {
                    best = new AvailableMemory(room, "cgroup limit " + limitAndUsage[0] + " less usage "
                            + limitAndUsage[1]);
                }
                break;
            }
        }
        return best;
    }

    /** (limit, usage) file pairs of the process's memory cgroup, most specific first. */
    private static List<Path[]> cgroupFiles(Path selfCgroup, Path root) {
        List<Path[]> pairs = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(selfCgroup)) {
                String[] f = line.split(":", 3);
                if (f.length < 3) {
                    continue;
                }
                String path = f[2].startsWith("/") ? f[2].substring(1) : f[2];
                if (f[0].equals("0") && f[1].isEmpty()) {
                    pairs.add(new Path[] {root.resolve(path).resolve("memory.max"), root.resolve(path).resolve("memory.current")});
                } else if (List.of(f[1].split(",")).contains("memory")) {
                    Path dir = root.resolve("memory").resolve(path);
                    pairs.add(new Path[] {dir.resolve("memory.limit_in_bytes"), dir.resolve("memory.usage_in_bytes")});
                }
            }
        } catch (IOException e) {
            // no cgroup information: MemAvailable alone
        }
        // inside a container the process's own cgroup is mounted at the root
        pairs.add(new Path[] {root.resolve("memory.max"), root.resolve("memory.current")});
        pairs.add(new Path[] {root.resolve("memory/memory.limit_in_bytes"), root.resolve("memory/memory.usage_in_bytes")});
        return pairs;
    }

    /** The kB value of a /proc/meminfo line, in bytes. */
    private static OptionalLong meminfo(Path file, String key) {
        try {
            for (String line : Files.readAllLines(file)) {
                if (line.startsWith(key)) {
                    String[] f = line.substring(key.length()).trim().split("\\s+");
                    return OptionalLong.of(Math.multiplyExact(Long.parseLong(f[0]), f.length > 1 ? 1024L : 1L));
                }
            }
        } catch (IOException | NumberFormatException e) {
            // reported by the caller as missing
        }
        return OptionalLong.empty();
    }

    /** A file holding one number; empty when absent, unreadable or "max" (no limit). */
    private static OptionalLong number(Path file) {
        try {
            String text = Files.readString(file).strip();
            return text.equals("max") ? OptionalLong.empty() : OptionalLong.of(Long.parseLong(text));
        } catch (IOException | NumberFormatException e) {
            return OptionalLong.empty();
        }
    }
}
