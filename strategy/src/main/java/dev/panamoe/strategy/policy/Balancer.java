package dev.panamoe.strategy.policy;

import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.Arrays;

/**
 * The placement algorithms the policies share, on per-expert loads (token slots per iteration):
 * SmartMoE's longest-processing-time assignment, a replica planner that copies hot experts onto
 * the least-loaded devices while that lowers the busiest device, and {@link #arrange}, which turns
 * "which devices hold expert e" into a slot table that moves as few slots as possible.
 *
 * <p>Replicas split their expert's tokens evenly ({@link ExpertPlacement#deviceLoads}).
 */
public final class Balancer {

    private Balancer() {
    }

    /**
     * SmartMoE's greedy: experts by load, heaviest first (ties: lower id first), each onto the
     * device with the least load so far that still has one of its capacity slots free; among
     * equally loaded devices the expert's current device wins, then the lowest index. Returns
     * the device of each expert.
     */
    public static int[] lpt(double[] load, int devices, int capacity, int[] currentDevice) {
        int experts = load.length;
        if ((long) devices * capacity < experts) {
            throw new IllegalArgumentException("capacity: " + devices + " devices x " + capacity
                    + " slots cannot hold " + experts + " experts");
        }
        int[] order = byLoadDescending(load);
        double[] deviceLoad = new double[devices];
        int[] used = new int[devices];
        int[] device = new int[experts];
        for (int e : order) {
            int best = -1;
            for (int d = 0; d < devices; d++) {
                if (used[d] < capacity && (best < 0 || deviceLoad[d] < deviceLoad[best])) {
                    best = d;
                }
            }
            int current = currentDevice[e];
            if (current != best && used[current] < capacity && deviceLoad[current] == deviceLoad[best]) {
                best = current;
            }
            device[e] = best;
            deviceLoad[best] += load[e];
            used[best]++;
        }
        return device;
    }

    /**
     * At most maxSwaps swaps of one expert of the busiest device with one of the least-loaded
     * device, each the pair that best evens those two out and each strictly lowering the busiest
     * of them — a few moves instead of LPT's reshuffle. Keeps every device's expert count.
     * Returns the new device of each expert.
     */
    public static int[] refine(double[] load, int[] home, int devices, int maxSwaps) {
        int[] device = home.clone();
        double[] deviceLoad = new double[devices];
        for (int e = 0; e < load.length; e++) {
            deviceLoad[device[e]] += load[e];
        }
        for (int swap = 0; swap < maxSwaps; swap++) {
            int hi = argMax(deviceLoad);
            int lo = 0;
            for (int d = 1; d < devices; d++) {
                lo = deviceLoad[d] < deviceLoad[lo] ? d : lo;
            }
            double gap = deviceLoad[hi] - deviceLoad[lo];
            int bestA = -1;
            int bestB = -1;
            double bestEven = 0;
            for (int a = 0; a < load.length; a++) {
                if (device[a] != hi) {
                    continue;
                }
                for (int b = 0; b < load.length; b++) {
                    double moved = load[a] - load[b];
                    // both devices end strictly below the old maximum when 0 < moved < gap
                    if (device[b] == lo && moved > 0 && moved < gap && Math.min(moved, gap - moved) > bestEven) {
                        bestEven = Math.min(moved, gap - moved);
                        bestA = a;
                        bestB = b;
                    }
                }
            }
            if (bestA < 0) {
                break;
            }
            double moved = load[bestA] - load[bestB];
            deviceLoad[hi] -= moved;
            deviceLoad[lo] += moved;
            device[bestA] = lo;
            device[bestB] = hi;
        }
        return device;
    }

    /**
     * Adds copies of hot experts, each on the least-loaded device with a free slot that does not
     * hold it yet, while that strictly lowers the busiest device without making the receiver the
     * new busiest; at most maxReplicas copies in all. home[e] is the device of expert e's one
     * copy to start from. Returns, per expert, the devices holding it (home first).
     */
    public static int[][] replicate(double[] load, int[] home, int devices, int slotsPerDevice, int maxReplicas) {
        int experts = load.length;
        int[][] holders = new int[experts][];
        int[] copies = new int[experts];
        int[] used = new int[devices];
        int[][] held = new int[devices][slotsPerDevice];
        double[] deviceLoad = new double[devices];
        for (int e = 0; e < experts; e++) {
            holders[e] = new int[] {home[e]};
            copies[e] = 1;
            int d = home[e];
            if (used[d] == slotsPerDevice) {
                throw new IllegalArgumentException("home: device " + d + " holds more than " + slotsPerDevice
                        + " experts");
            }
            held[d][used[d]++] = e;
            deviceLoad[d] += load[e];
        }
        for (int added = 0; added < maxReplicas; added++) {
            int busiest = argMax(deviceLoad);
            if (!addCopy(busiest, load, holders, copies, used, held, deviceLoad, slotsPerDevice)) {
                break;
            }
        }
        return holders;
    }

    /** Tries the busiest device's experts, largest share first; true when one got a copy. */
    private static boolean addCopy(int busiest, double[] load, int[][] holders, int[] copies, int[] used,
            int[][] held, double[] deviceLoad, int slotsPerDevice) {
        int n = used[busiest];
        boolean[] tried = new boolean[n];
        double top = deviceLoad[busiest];
        for (int attempt = 0; attempt < n; attempt++) {
            // the untried expert with the largest share (ties: the earlier one); n is a few slots
            int i = -1;
            for (int j = 0; j < n; j++) {
                if (!tried[j] && (i < 0 || share(load, copies, held[busiest][j]) > share(load, copies, held[busiest][i]))) {
                    i = j;
                }
            }
            tried[i] = true;
            int e = held[busiest][i];
            int target = leastLoadedWithout(e, holders[e], used, deviceLoad, slotsPerDevice);
            if (target < 0) {
                continue;
            }
            double newShare = load[e] / (copies[e] + 1);
            double drop = share(load, copies, e) - newShare;
            if (drop <= 0 || deviceLoad[target] + newShare >= top) {
                continue;
            }
            for (int d : holders[e]) {
                deviceLoad[d] -= drop;
            }
            deviceLoad[target] += newShare;
            holders[e] = Arrays.copyOf(holders[e], copies[e] + 1);
            holders[e][copies[e]++] = target;
            held[target][used[target]++] = e;
            return true;
        }
        return false;
    }

    private static double share(double[] load, int[] copies, int expert) {
        return load[expert] / copies[expert];
    }

    private static int leastLoadedWithout(int expert, int[] holders, int[] used, double[] deviceLoad,
            int slotsPerDevice) {
        int best = -1;
        for (int d = 0; d < deviceLoad.length; d++) {
            if (used[d] < slotsPerDevice && (best < 0 || deviceLoad[d] < deviceLoad[best]) && !contains(holders, d)) {
                best = d;
            }
        }
        return best;
    }

    /**
     * A placement shaped like current in which expert e is held by exactly the devices
     * holders[e] (no device twice). An expert that stays on a device keeps its slot there; the
     * others take that device's free slots in order, so the result differs from current in as
     * few slots as this assignment allows.
     */
    public static ExpertPlacement arrange(ExpertPlacement current, int[][] holders) {
        int devices = current.devices();
        int s = current.slotsPerDevice();
        int experts = current.experts();
        // wanted[d] = experts device d must hold
        int[][] wanted = new int[devices][s];
        int[] count = new int[devices];
        for (int e = 0; e < experts; e++) {
            for (int d : holders[e]) {
                if (count[d] == s) {
                    throw new IllegalArgumentException("holders: device " + d + " would hold more than " + s
                            + " experts");
                }
                wanted[d][count[d]++] = e;
            }
        }
        int[] table = new int[devices * s];
        Arrays.fill(table, ExpertPlacement.FREE);
        boolean[] placed = new boolean[experts];
        for (int d = 0; d < devices; d++) {
            for (int i = 0; i < count[d]; i++) {
                placed[wanted[d][i]] = false;
            }
            for (int local = 0; local < s; local++) {
                int e = current.expertAt(d * s + local);
                if (e != ExpertPlacement.FREE && !placed[e] && contains(wanted[d], count[d], e)) {
                    table[d * s + local] = e;
                    placed[e] = true;
                }
            }
            int local = 0;
            for (int i = 0; i < count[d]; i++) {
                int e = wanted[d][i];
                if (!placed[e]) {
                    while (table[d * s + local] != ExpertPlacement.FREE) {
                        local++;
                    }
                    table[d * s + local] = e;
                    placed[e] = true;
                }
            }
        }
        return ExpertPlacement.of(experts, devices, s, table);
    }

    /** Devices holding each expert, in slot order. */
    public static int[][] holders(ExpertPlacement p) {
        int[][] holders = new int[p.experts()][];
        for (int e = 0; e < p.experts(); e++) {
            int[] slots = p.slotsOf(e);
            holders[e] = new int[slots.length];
            for (int i = 0; i < slots.length; i++) {
                holders[e][i] = p.deviceOf(slots[i]);
            }
        }
        return holders;
    }

    /** The busiest device's load over the mean device load (1 = perfectly balanced; 1 for no load). */
    public static double maxOverMean(double[] deviceLoads) {
        double max = 0;
        double sum = 0;
        for (double v : deviceLoads) {
            max = Math.max(max, v);
            sum += v;
        }
        return sum == 0 ? 1 : max * deviceLoads.length / sum;
    }

    /** Each device's load under placement p for per-expert loads (replicas split evenly). */
    public static double[] deviceLoads(ExpertPlacement p, double[] load) {
        if (load.length != p.experts()) {
            throw new IllegalArgumentException("load: expected " + p.experts() + " experts, got " + load.length);
        }
        double[] out = new double[p.devices()];
        for (int slot = 0; slot < p.physicalSlots(); slot++) {
            int e = p.expertAt(slot);
            if (e != ExpertPlacement.FREE) {
                out[p.deviceOf(slot)] += load[e] / p.copies(e);
            }
        }
        return out;
    }

    public static double[] toDouble(long[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i];
        }
        return out;
    }

    static int argMax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Indices of v, largest value first, ties by lower index. */
    private static int[] byLoadDescending(double[] v) {
        Integer[] order = new Integer[v.length];
        for (int i = 0; i < v.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> v[a] != v[b] ? Double.compare(v[b], v[a]) : Integer.compare(a, b));
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = order[i];
        }
        return out;
    }

    private static boolean contains(int[] a, int v) {
        return contains(a, a.length, v);
    }

    private static boolean contains(int[] a, int n, int v) {
        for (int i = 0; i < n; i++) {
            if (a[i] == v) {
                return true;
            }
        }
        return false;
    }
}
