/*
 * panamoe.h - the PanaMoE C ABI.
 *
 * One header, two implementations: libpanamoe_cpu.so (C++17, OpenMP) and libpanamoe_cuda.so.
 * It is the single source of truth for the Java bindings (bindings/.../panamoe_h.java), which
 * a test checks against this file: keep one declaration per line-group, plain C types only.
 *
 * Conventions (see shared DESIGN.md):
 *  - every entry point returns int: PMOE_OK (0) or an error code; pmoe_last_error() gives a
 *    message for the calling thread that names the offending argument and its value;
 *  - arguments are raw pointers with explicit sizes; `stream` is NULL on the CPU;
 *  - row-major storage; "rows" of a tensor [n, d] are contiguous runs of d elements;
 *  - no allocation is handed across the ABI, no process exit: bad input returns a status;
 *  - deterministic: the same inputs give bitwise-identical outputs, whatever the thread count.
 */
#ifndef PANAMOE_H
#define PANAMOE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PMOE_API __declspec(dllexport)
#else
#define PMOE_API __attribute__((visibility("default")))
#endif

/* ---- status codes ---- */
#define PMOE_OK 0
#define PMOE_ERR_INVALID_ARGUMENT 1
#define PMOE_ERR_UNSUPPORTED 2
#define PMOE_ERR_NON_FINITE 3
#define PMOE_ERR_RUNTIME 4

/* ---- enums (passed as int32_t) ---- */
#define PMOE_DTYPE_F32 0
#define PMOE_DTYPE_BF16 1

#define PMOE_SCORE_SOFTMAX 0
#define PMOE_SCORE_SIGMOID 1

#define PMOE_ACT_GELU 0   /* tanh approximation, as GPT-2 */
#define PMOE_ACT_SILU 1
#define PMOE_ACT_SWIGLU 2 /* input row = [gate(f) | up(f)], output = silu(gate) * up */

#define PMOE_DROP_BY_POSITION 0    /* keep the first `capacity` slots in (token, k) order */
#define PMOE_DROP_BY_PROBABILITY 1 /* keep the `capacity` slots with the largest weights */

#define PMOE_CAPACITY_DROPLESS (-1)

/* ---- structs ---- */

/* Router configuration: scoring + top-k over logits [tokens, experts]. */
typedef struct pmoe_router_config {
    int32_t tokens;
    int32_t experts;
    int32_t top_k;
    int32_t score_func;  /* PMOE_SCORE_* */
    int32_t renormalize; /* 1: top-k weights divided by their sum */
    int32_t reserved;    /* must be 0 */
} pmoe_router_config;

/* Dispatch configuration: how (token, k) slots are laid out in the expert-sorted buffer. */
typedef struct pmoe_dispatch_config {
    int32_t tokens;
    int32_t top_k;
    int32_t logical_experts;  /* range of router ids */
    int32_t physical_experts; /* range of remapped ids (slots of the placement) */
    int32_t capacity;         /* max rows per physical expert, or PMOE_CAPACITY_DROPLESS */
    int32_t drop_policy;      /* PMOE_DROP_* (ignored when dropless) */
} pmoe_dispatch_config;

/* ---- library ---- */

/* Message of the last failed call on this thread ("" if none). Valid until the next call. */
PMOE_API const char *pmoe_last_error(void);
PMOE_API int pmoe_version(int32_t *major, int32_t *minor, int32_t *patch);
/* Name of the implementation: "cpu" or "cuda". */
PMOE_API const char *pmoe_backend_name(void);
/* Does nothing; for measuring the cost of a downcall. */
PMOE_API int pmoe_noop(void);
/* Threads used by parallel kernels (CPU: OpenMP team size). n >= 1. */
PMOE_API int pmoe_set_num_threads(int32_t n);
PMOE_API int pmoe_get_num_threads(int32_t *n);
/* Index of the first NaN/Inf in x[0..n), or -1 if all are finite. */
PMOE_API int pmoe_find_nonfinite(int64_t n, const float *x, int64_t *first_index, void *stream);

/* ---- dense GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, f32 ----
 * op(A) is [m, k], op(B) is [k, n]; trans_a/trans_b are 0 or 1; lda/ldb/ldc are row strides.
 * beta == 0 means C is not read (it may hold garbage or NaN). m, n or k may be 0. */
PMOE_API int pmoe_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                       float alpha, const float *a, int32_t lda, const float *b, int32_t ldb,
                       float beta, float *c, int32_t ldc, void *stream);

/* ---- grouped GEMM over variable-size row groups (expert FFN), f32 ----
 * Group g owns rows [offsets[g], offsets[g+1]) of the row-major matrices; groups may be empty.
 * weights[g] points at expert g's own matrix (each expert's storage is separate).
 *  nn: c[rows_g, n] = a[rows_g, k] * weights[g][k, n]                 (forward)
 *  nt: c[rows_g, n] = a[rows_g, k] * weights[g][n, k]^T               (data gradient)
 *  tn: out[g][k, n] = beta * out[g] + a[rows_g, k]^T * b[rows_g, n]   (weight gradient)
 * offsets[0] must be 0 and offsets must not decrease; an empty group of tn still writes
 * beta * out[g] (zeros when beta == 0), so weight gradients are always defined. */
PMOE_API int pmoe_grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream);
PMOE_API int pmoe_grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream);
PMOE_API int pmoe_grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *b, float beta, float *const *out,
                                  void *stream);

/* ---- router: scores + top-k ----
 * logits [T, E] -> scores [T, E] (softmax or sigmoid), topk_weights [T, K], topk_ids [T, K].
 * Ties in top-k go to the lower expert id. Non-finite logits fail with PMOE_ERR_NON_FINITE.
 * With softmax + renormalize the weights equal a softmax over the selected logits. */
PMOE_API int pmoe_router_forward(const pmoe_router_config *cfg, const float *logits,
                                 float *scores, float *topk_weights, int32_t *topk_ids,
                                 void *stream);
/* grad_logits [T, E] = d loss / d logits, from grad_topk_weights [T, K] and, optionally
 * (may be NULL), a direct gradient on the scores grad_scores [T, E] (from the aux loss). */
PMOE_API int pmoe_router_backward(const pmoe_router_config *cfg, const float *scores,
                                  const int32_t *topk_ids, const float *grad_topk_weights,
                                  const float *grad_scores, float *grad_logits, void *stream);

/* ---- load-balancing losses ----
 * Switch/GShard aux loss: loss = coeff * E * sum_e f_e * P_e, with f_e = counts[e] / (T * K)
 * (share of routed slots, taken as constant) and P_e = mean_t scores[t, e].
 * expert_counts [E] receives the per-expert slot counts. */
PMOE_API int pmoe_aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k,
                                   const float *scores, const int32_t *topk_ids, float coeff,
                                   float *loss, int32_t *expert_counts, void *stream);
/* grad_scores [T, E] = grad_loss * d loss / d scores (overwritten). */
PMOE_API int pmoe_aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k,
                                    const int32_t *expert_counts, float coeff, float grad_loss,
                                    float *grad_scores, void *stream);
/* Router z-loss: loss = coeff * mean_t logsumexp(logits_t)^2. */
PMOE_API int pmoe_z_loss_forward(int32_t tokens, int32_t experts, const float *logits,
                                 float coeff, float *loss, void *stream);
/* Adds grad_loss * d loss / d logits into grad_logits [T, E]. */
PMOE_API int pmoe_z_loss_backward(int32_t tokens, int32_t experts, const float *logits,
                                  float coeff, float grad_loss, float *grad_logits,
                                  void *stream);

/* ---- dispatch plan ----
 * For every (token t, choice j) slot s = t * K + j: physical expert p = remap[topk_ids[s]]
 * (remap may be NULL: identity, then logical_experts must equal physical_experts).
 * Outputs:
 *   expert_counts [P]      rows kept per physical expert (after capacity);
 *   expert_offsets [P + 1] exclusive scan of expert_counts;
 *   slot_position [T * K]  row of slot s in the expert-sorted buffer, or -1 if dropped;
 *   sorted_slot [T * K]    slot held by each row; rows >= expert_offsets[P] are set to -1.
 * Rows of one expert keep (token, k) order (stable counting sort). */
PMOE_API int pmoe_dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                                const float *topk_weights, const int32_t *remap,
                                int32_t *expert_counts, int32_t *expert_offsets,
                                int32_t *slot_position, int32_t *sorted_slot, void *stream);

/* ---- permute / unpermute-combine (dtype: PMOE_DTYPE_F32 or PMOE_DTYPE_BF16) ----
 * permute:          out[r, :] = x[sorted_slot[r] / K, :]          for r < rows
 * permute_backward: grad_x[t, :] = sum_j grad_out[slot_position[t*K+j], :] (kept slots only)
 * combine:          y[t, :] = sum_j w[t, j] * expert_out[slot_position[t*K+j], :]
 * combine_backward: grad_expert_out[pos(t,j), :] = w[t, j] * grad_y[t, :];
 *                   grad_weights[t, j] = <grad_y[t, :], expert_out[pos(t,j), :]> (0 if dropped)
 * `rows` is expert_offsets[P] of the plan; hidden is the row length. */
PMOE_API int pmoe_permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                          int32_t hidden, const void *x, const int32_t *sorted_slot, void *out,
                          void *stream);
PMOE_API int pmoe_permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                                   int32_t hidden, const void *grad_out,
                                   const int32_t *slot_position, void *grad_x, void *stream);
PMOE_API int pmoe_combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                          int32_t hidden, const void *expert_out, const float *topk_weights,
                          const int32_t *slot_position, void *y, void *stream);
PMOE_API int pmoe_combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                                   int32_t hidden, const void *grad_y, const void *expert_out,
                                   const float *topk_weights, const int32_t *slot_position,
                                   void *grad_expert_out, float *grad_weights, void *stream);

/* ---- activations (f32) ----
 * in [rows, cols] (SwiGLU: [rows, 2 * cols]) -> out [rows, cols].
 * backward: grad_in from in and grad_out (grad_in has the shape of in). */
PMOE_API int pmoe_activation_forward(int32_t act, int32_t rows, int32_t cols, const float *in,
                                     float *out, void *stream);
PMOE_API int pmoe_activation_backward(int32_t act, int32_t rows, int32_t cols, const float *in,
                                      const float *grad_out, float *grad_in, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* PANAMOE_H */
