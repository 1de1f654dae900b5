package dev.panamoe.ops.kernels;

import dev.panamoe.bindings.panamoe_h;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Plain double-precision references of the kernels of panamoe.h, written from the header's
 * comments, one small function per kernel (backward kernels are checked against finite
 * differences of these forwards where the header gives no closed form). Inputs are the f32 or
 * int data the kernel sees, widened to double; enum arguments use the header's values.
 */
final class ReferenceKernels {
    private ReferenceKernels() {}

    static final int SOFTMAX = panamoe_h.PMOE_SCORE_SOFTMAX(), SIGMOID = panamoe_h.PMOE_SCORE_SIGMOID();
    static final int GELU = panamoe_h.PMOE_ACT_GELU(), SILU = panamoe_h.PMOE_ACT_SILU(), SWIGLU = panamoe_h.PMOE_ACT_SWIGLU();
    static final int BY_POSITION = panamoe_h.PMOE_DROP_BY_POSITION(), BY_PROBABILITY = panamoe_h.PMOE_DROP_BY_PROBABILITY();
    static final int DROPLESS = panamoe_h.PMOE_CAPACITY_DROPLESS();

    // ---- GEMM ----

    /**
     * c[i * ldc + j] = alpha * sum_p op(a)[i, p] * op(b)[p, j] + beta * c[i * ldc + j] over the
     * [m, n] window; beta == 0 does not read c. op(a)[i, p] is a[p * lda + i] when transposed.
     */
    static void gemm(boolean transA, boolean transB, int m, int n, int k, double alpha, double[] a, int lda,
                     double[] b, int ldb, double beta, double[] c, int ldc) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int p = 0; p < k; p++) {
                    double aip = transA ? a[p * lda + i] : a[i * lda + p];
                    double bpj = transB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += aip * bpj;
                }
                int at = i * ldc + j;
                c[at] = alpha * sum + (beta == 0 ? 0 : beta * c[at]);
            }
        }
    }

    /**
     * Grouped nn / nt: c[r, :] = a[r, :] * W_g for the rows r of group g, where W_g is [k, n]
     * (nn) or stored [n, k] and used transposed (nt). Returns c [offsets[groups], n].
     */
    static double[] groupedGemm(int[] offsets, int k, int n, double[] a, double[][] weights, boolean transposed) {
        int groups = offsets.length - 1;
        double[] c = new double[offsets[groups] * n];
        for (int g = 0; g < groups; g++) {
            double[] w = weights[g];
            for (int r = offsets[g]; r < offsets[g + 1]; r++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int p = 0; p < k; p++) sum += a[r * k + p] * (transposed ? w[j * k + p] : w[p * n + j]);
                    c[r * n + j] = sum;
                }
            }
        }
        return c;
    }

    /** Grouped tn: out[g][k, n] = beta * out[g] + a[rows_g, k]^T * b[rows_g, n] (beta == 0: out not read). */
    static double[][] groupedGemmTN(int[] offsets, int k, int n, double[] a, double[] b, double beta, double[][] out) {
        int groups = offsets.length - 1;
        double[][] result = new double[groups][k * n];
        for (int g = 0; g < groups; g++) {
            for (int p = 0; p < k; p++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int r = offsets[g]; r < offsets[g + 1]; r++) sum += a[r * k + p] * b[r * n + j];
                    result[g][p * n + j] = sum + (beta == 0 ? 0 : beta * out[g][p * n + j]);
                }
            }
        }
        return result;
    }

    // ---- router ----

    /** scores [T, E]: softmax over each row of logits, or element-wise sigmoid. */
    static double[] routerScores(int tokens, int experts, int scoreFunc, double[] logits) {
        double[] s = new double[tokens * experts];
        for (int t = 0; t < tokens; t++) {
            int row = t * experts;
            if (scoreFunc == SIGMOID) {
                for (int e = 0; e < experts; e++) s[row + e] = 1 / (1 + Math.exp(-logits[row + e]));
                continue;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int e = 0; e < experts; e++) max = Math.max(max, logits[row + e]);
            double sum = 0;
            for (int e = 0; e < experts; e++) sum += s[row + e] = Math.exp(logits[row + e] - max);
            for (int e = 0; e < experts; e++) s[row + e] /= sum;
        }
        return s;
    }

    /** topk_ids [T, K]: the K largest scores of each row, largest first, ties to the lower id. */
    static int[] topkIds(int tokens, int experts, int topK, double[] scores) {
        int[] ids = new int[tokens * topK];
        for (int t = 0; t < tokens; t++) {
            int row = t * experts;
            Integer[] order = new Integer[experts];
            for (int e = 0; e < experts; e++) order[e] = e;
            // Arrays.sort on objects is stable: equal scores keep ascending id order.
            Arrays.sort(order, (x, y) -> Double.compare(scores[row + y], scores[row + x]));
            for (int j = 0; j < topK; j++) ids[t * topK + j] = order[j];
        }
        return ids;
    }

    /** topk_weights [T, K]: the selected scores, divided by their sum when renormalizing. */
    static double[] topkWeights(int tokens, int experts, int topK, boolean renormalize, double[] scores, int[] ids) {
        double[] w = new double[tokens * topK];
        for (int t = 0; t < tokens; t++) {
            double sum = 0;
            for (int j = 0; j < topK; j++) sum += w[t * topK + j] = scores[t * experts + ids[t * topK + j]];
            if (renormalize) for (int j = 0; j < topK; j++) w[t * topK + j] /= sum;
        }
        return w;
    }

    // ---- load-balancing losses ----

    /** Slots routed to each expert. */
    static int[] expertCounts(int experts, int[] ids) {
        int[] counts = new int[experts];
        for (int id : ids) counts[id]++;
        return counts;
    }

    /** coeff * E * sum_e (counts[e] / (T * K)) * mean_t scores[t, e]. */
    static double auxLoss(int tokens, int experts, int topK, double[] scores, int[] counts, double coeff) {
        double loss = 0;
        for (int e = 0; e < experts; e++) {
            double meanScore = 0;
            for (int t = 0; t < tokens; t++) meanScore += scores[t * experts + e];
            meanScore /= tokens;
            loss += (double) counts[e] / ((double) tokens * topK) * meanScore;
        }
        return coeff * experts * loss;
    }

    /** coeff * mean_t logsumexp(logits[t, :])^2. */
    static double zLoss(int tokens, int experts, double[] logits, double coeff) {
        double sum = 0;
        for (int t = 0; t < tokens; t++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int e = 0; e < experts; e++) max = Math.max(max, logits[t * experts + e]);
            double s = 0;
            for (int e = 0; e < experts; e++) s += Math.exp(logits[t * experts + e] - max);
            double lse = max + Math.log(s);
            sum += lse * lse;
        }
        return coeff * sum / tokens;
    }

    // ---- dispatch plan ----

    record Plan(int[] counts, int[] offsets, int[] slotPosition, int[] sortedSlot) {
        int rows() {
            return offsets[offsets.length - 1];
        }
    }

    /**
     * Slot s = t * K + j goes to physical expert remap[ids[s]] (identity when remap is null).
     * Each expert keeps all its slots (dropless), its first `capacity` in slot order, or its
     * `capacity` largest weights (ties to the lower slot); kept rows are laid out expert by expert
     * in slot order.
     */
    static Plan dispatchPlan(int tokens, int topK, int physical, int capacity, int dropPolicy,
                             int[] ids, float[] weights, int[] remap) {
        int slots = tokens * topK;
        List<List<Integer>> bySlot = new ArrayList<>();
        for (int p = 0; p < physical; p++) bySlot.add(new ArrayList<>());
        for (int s = 0; s < slots; s++) bySlot.get(remap == null ? ids[s] : remap[ids[s]]).add(s);

        int[] counts = new int[physical];
        int[] offsets = new int[physical + 1];
        int[] slotPosition = new int[slots];
        int[] sortedSlot = new int[slots];
        Arrays.fill(slotPosition, -1);
        Arrays.fill(sortedSlot, -1);
        for (int p = 0; p < physical; p++) {
            List<Integer> kept = new ArrayList<>(bySlot.get(p));
            if (capacity != DROPLESS && kept.size() > capacity) {
                if (dropPolicy == BY_PROBABILITY) {
                    kept.sort(Comparator.comparingDouble((Integer s) -> -weights[s]).thenComparingInt(s -> s));
                }
                kept = new ArrayList<>(kept.subList(0, capacity));
                kept.sort(null);
            }
            counts[p] = kept.size();
            offsets[p + 1] = offsets[p] + counts[p];
            for (int r = 0; r < kept.size(); r++) {
                slotPosition[kept.get(r)] = offsets[p] + r;
                sortedSlot[offsets[p] + r] = kept.get(r);
            }
        }
        return new Plan(counts, offsets, slotPosition, sortedSlot);
    }

    // ---- permute / combine ----

    /** out[r, :] = x[sorted_slot[r] / K, :] for r < rows. */
    static double[] permute(int topK, int rows, int hidden, double[] x, int[] sortedSlot) {
        double[] out = new double[rows * hidden];
        for (int r = 0; r < rows; r++) System.arraycopy(x, sortedSlot[r] / topK * hidden, out, r * hidden, hidden);
        return out;
    }

    /** grad_x[t, :] = sum over kept slots (t, j) of grad_out[slot_position[t * K + j], :]. */
    static double[] permuteBackward(int tokens, int topK, int hidden, double[] gradOut, int[] slotPosition) {
        double[] ones = new double[tokens * topK];
        Arrays.fill(ones, 1);
        return combine(tokens, topK, hidden, gradOut, ones, slotPosition);
    }

    /** y[t, :] = sum over kept slots (t, j) of w[t, j] * expert_out[slot_position[t * K + j], :]. */
    static double[] combine(int tokens, int topK, int hidden, double[] expertOut, double[] weights, int[] slotPosition) {
        double[] y = new double[tokens * hidden];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < topK; j++) {
                int row = slotPosition[t * topK + j];
                if (row < 0) continue;
                for (int h = 0; h < hidden; h++) y[t * hidden + h] += weights[t * topK + j] * expertOut[row * hidden + h];
            }
        }
        return y;
    }

    /** grad_expert_out [rows, H] and grad_weights [T, K] of combine. */
    record CombineGrads(double[] expertOut, double[] weights) {}

    static CombineGrads combineBackward(int tokens, int topK, int rows, int hidden, double[] gradY,
                                        double[] expertOut, double[] weights, int[] slotPosition) {
        double[] gradExpertOut = new double[rows * hidden];
        double[] gradWeights = new double[tokens * topK];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < topK; j++) {
                int s = t * topK + j;
                int row = slotPosition[s];
                if (row < 0) continue;
                for (int h = 0; h < hidden; h++) {
                    gradExpertOut[row * hidden + h] = weights[s] * gradY[t * hidden + h];
                    gradWeights[s] += gradY[t * hidden + h] * expertOut[row * hidden + h];
                }
            }
        }
        return new CombineGrads(gradExpertOut, gradWeights);
    }

    // ---- activations ----

    static double gelu(double x) {
        return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    }

    static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    /** out [rows, cols]; SwiGLU reads in rows [gate(cols) | up(cols)] and gives silu(gate) * up. */
    static double[] activation(int act, int rows, int cols, double[] in) {
        double[] out = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (act == SWIGLU) out[r * cols + c] = silu(in[r * 2 * cols + c]) * in[r * 2 * cols + cols + c];
                else if (act == SILU) out[r * cols + c] = silu(in[r * cols + c]);
                else out[r * cols + c] = gelu(in[r * cols + c]);
            }
        }
        return out;
    }
}
