package dev.panamoe.ops;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The MoE layer in plain double precision, written from the definitions (not from the
 * kernels): router, top-k, aux and z losses, remap, capacity with both drop policies, expert
 * FFNs and combine. Its parameters are copies of a layer's, held as flat arrays so a
 * finite-difference check can perturb them one by one.
 */
final class ReferenceMoE {
    final MoELayer.Config cfg;
    final int[] remap;
    /** gate [H * E], then per expert w1 [H * F'] and w2 [F * H], in MoELayer.parameters() order. */
    final List<double[]> params = new ArrayList<>();

    record Result(double[][] y, double aux, double z, int[][] ids, double[][] weights, boolean[][] kept,
            int[] logicalCounts, int[] physicalCounts) {
        int dropped() {
            int d = 0;
            for (boolean[] row : kept) {
                for (boolean k : row) {
                    d += k ? 0 : 1;
                }
            }
            return d;
        }
    }

    ReferenceMoE(MoELayer layer, int[] remap) {
        this.cfg = layer.config();
        this.remap = remap.clone();
        for (Parameter p : layer.parameters()) {
            params.add(toDouble(p.value().toFloatArray()));
        }
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    double[] gate() {
        return params.get(0);
    }

    double[] w1(int e) {
        return params.get(1 + 2 * e);
    }

    double[] w2(int e) {
        return params.get(2 + 2 * e);
    }

    Result forward(double[][] x) {
        int tokens = x.length;
        int experts = cfg.experts();
        int k = cfg.topK();
        int hidden = cfg.hidden();
        double[][] logits = new double[tokens][experts];
        double[][] scores = new double[tokens][experts];
        int[][] ids = new int[tokens][];
        double[][] weights = new double[tokens][k];
        double z = 0;
        for (int t = 0; t < tokens; t++) {
            for (int e = 0; e < experts; e++) {
                for (int c = 0; c < hidden; c++) {
                    logits[t][e] += x[t][c] * gate()[c * experts + e];
                }
            }
            scores[t] = score(logits[t]);
            ids[t] = topK(logits[t], k);
            double selected = 0;
            for (int j = 0; j < k; j++) {
                selected += scores[t][ids[t][j]];
            }
            for (int j = 0; j < k; j++) {
                weights[t][j] = scores[t][ids[t][j]] / (cfg.renormalize() ? selected : 1);
            }
            double lse = logSumExp(logits[t]);
            z += lse * lse / tokens;
        }
        z *= cfg.zLossCoeff();

        int[] logicalCounts = new int[experts];
        for (int[] row : ids) {
            for (int e : row) {
                logicalCounts[e]++;
            }
        }
        double aux = 0;
        for (int e = 0; e < experts; e++) {
            double meanScore = 0;
            for (int t = 0; t < tokens; t++) {
                meanScore += scores[t][e] / tokens;
            }
            aux += (double) logicalCounts[e] / (tokens * k) * meanScore;
        }
        aux *= cfg.auxLossCoeff() * experts;

        boolean[][] kept = keptSlots(ids, weights);
        int[] physicalCounts = new int[experts];
        double[][] y = new double[tokens][hidden];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < k; j++) {
                if (!kept[t][j]) {
                    continue;
                }
                int e = ids[t][j];
                physicalCounts[remap[e]]++;
                double[] out = ffn(e, x[t]);
                for (int c = 0; c < hidden; c++) {
                    y[t][c] += weights[t][j] * out[c];
                }
            }
        }
        return new Result(y, aux, z, ids, weights, kept, logicalCounts, physicalCounts);
    }

    /** Which slots survive the capacity of their physical expert. */
    boolean[][] keptSlots(int[][] ids, double[][] weights) {
        int tokens = ids.length;
        int k = cfg.topK();
        int experts = cfg.experts();
        boolean[][] kept = new boolean[tokens][k];
        for (int p = 0; p < experts; p++) {
            List<Integer> slots = new ArrayList<>(); // slot s = t * k + j, in slot order
            for (int t = 0; t < tokens; t++) {
                for (int j = 0; j < k; j++) {
                    if (remap[ids[t][j]] == p) {
                        slots.add(t * k + j);
                    }
                }
            }
            int keep = slots.size();
            if (!cfg.dropless()) {
                int capacity = (int) Math.min((long) tokens * k, (long) Math.ceil((double) tokens * k * cfg.capacityFactor() / experts));
                keep = Math.min(keep, capacity);
                if (cfg.dropPolicy() == DropPolicy.BY_PROBABILITY) {
                    slots.sort((a, b) -> {
                        int byWeight = Double.compare(weights[b / k][b % k], weights[a / k][a % k]);
                        return byWeight != 0 ? byWeight : Integer.compare(a, b);
                    });
                }
            }
            for (int i = 0; i < keep; i++) {
                int s = slots.get(i);
                kept[s / k][s % k] = true;
            }
        }
        return kept;
    }

    double[] ffn(int e, double[] xt) {
        int hidden = cfg.hidden();
        int ffn = cfg.ffn();
        int width = cfg.activation().inputWidth(ffn);
        double[] h = new double[width];
        for (int c = 0; c < hidden; c++) {
            for (int f = 0; f < width; f++) {
                h[f] += xt[c] * w1(e)[c * width + f];
            }
        }
        double[] a = new double[ffn];
        for (int f = 0; f < ffn; f++) {
            a[f] = switch (cfg.activation()) {
                case GELU -> 0.5 * h[f] * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (h[f] + 0.044715 * h[f] * h[f] * h[f])));
                case SILU -> silu(h[f]);
                case SWIGLU -> silu(h[f]) * h[ffn + f];
            };
        }
        double[] out = new double[hidden];
        for (int f = 0; f < ffn; f++) {
            for (int c = 0; c < hidden; c++) {
                out[c] += a[f] * w2(e)[f * hidden + c];
            }
        }
        return out;
    }

    double[] score(double[] logits) {
        double[] s = new double[logits.length];
        if (cfg.scoreFunction() == ScoreFunction.SIGMOID) {
            Arrays.setAll(s, e -> 1 / (1 + Math.exp(-logits[e])));
            return s;
        }
        double lse = logSumExp(logits);
        Arrays.setAll(s, e -> Math.exp(logits[e] - lse));
        return s;
    }

    /** The k largest logits in decreasing order, ties to the lower id. */
    static int[] topK(double[] logits, int k) {
        Integer[] order = new Integer[logits.length];
        Arrays.setAll(order, e -> e);
        Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Double.compare(logits[b], logits[a]) : Integer.compare(a, b));
        int[] ids = new int[k];
        for (int j = 0; j < k; j++) {
            ids[j] = order[j];
        }
        return ids;
    }

    static double logSumExp(double[] v) {
        double max = Arrays.stream(v).max().orElseThrow();
        double s = 0;
        for (double x : v) {
            s += Math.exp(x - max);
        }
        return max + Math.log(s);
    }

    static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }
}
