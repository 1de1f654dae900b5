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

/* CPU instruction-set levels of the CPU library's kernels (each includes the ones below). */
#define PMOE_ISA_AVX2 1        /* AVX2 + FMA: 256-bit f32 kernels; bf16 widened to f32 */
#define PMOE_ISA_AVX512 2      /* + AVX-512 F/BW/VL/DQ: 512-bit f32 kernels; bf16 widened */
#define PMOE_ISA_AVX512_BF16 3 /* + AVX512_BF16: bf16 products with vdpbf16ps */

/* Feature bits of pmoe_cpu_isa (each also requires the OS to save the registers: XGETBV). */
#define PMOE_CPU_AVX2_FMA 1     /* avx2 and fma, OS saves ymm */
#define PMOE_CPU_AVX512 2       /* avx512f, avx512bw, avx512vl, avx512dq, OS saves zmm/opmask */
#define PMOE_CPU_AVX512_BF16 4  /* avx512_bf16 */

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
/* CPU kernels' instruction-set level. The CPU library detects the CPU's features once at load
 * and uses the highest level they allow, or the one the environment variable
 * PMOE_CPU_ISA=avx2|avx512|avx512_bf16 names (read once at load). Results are bitwise
 * reproducible per level, whatever the thread count; levels differ in rounding only.
 * pmoe_cpu_isa: *level_in_use = PMOE_ISA_*, *features_found = PMOE_CPU_* bits. If PMOE_CPU_ISA
 * named an unknown level or one the CPU lacks, the detected level stays in use and every call
 * of pmoe_cpu_isa fails with that reason (after writing the outputs), so callers report it.
 * pmoe_set_cpu_isa: uses `level` from now on; a level the CPU lacks fails with
 * PMOE_ERR_UNSUPPORTED naming the missing feature ("CPU lacks avx512_bf16") and clears a
 * PMOE_CPU_ISA error. Not to be called while another thread runs a kernel.
 * The CUDA library has no CPU kernels: both return PMOE_ERR_UNSUPPORTED. */
PMOE_API int pmoe_cpu_isa(int32_t *level_in_use, uint32_t *features_found);
PMOE_API int pmoe_set_cpu_isa(int32_t level);
/* Index of the first NaN/Inf in x[0..n) of dtype (PMOE_DTYPE_F32 or _BF16), or -1 if all are
 * finite. */
PMOE_API int pmoe_find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index,
                                 void *stream);

/* ---- dense GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, f32 ----
 * op(A) is [m, k], op(B) is [k, n]; trans_a/trans_b are 0 or 1; lda/ldb/ldc are row strides.
 * beta == 0 means C is not read (it may hold garbage or NaN); alpha == 0 means A and B are not
 * read (C = beta * C), as in BLAS. m, n or k may be 0. */
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

/* ---- bf16 GEMMs ----
 * Operands are bf16 (uint16_t bit patterns), products of bf16 values are accumulated in f32
 * (vdpbf16ps on AVX512_BF16 CPUs, else widened to f32), and a bf16 output element is rounded
 * once (nearest even) from its f32 sum. Shapes, offsets and NULL rules as the f32 versions.
 * c_dtype / out_dtype: PMOE_DTYPE_F32 (f32 output, e.g. f32 master gradients) or
 * PMOE_DTYPE_BF16. */
PMOE_API int pmoe_gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                            float alpha, const void *a, int32_t lda, const void *b, int32_t ldb,
                            float beta, int32_t c_dtype, void *c, int32_t ldc, void *stream);
/* nn: c[rows_g, n] = a[rows_g, k] * weights[g][k, n]; a, weights and c bf16.
 * CUDA runs it on tensor cores and needs k and n multiples of 8 (else PMOE_ERR_UNSUPPORTED)
 * and a, c and every weights[g] 16-byte aligned. */
PMOE_API int pmoe_grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k,
                                       int32_t n, const void *a, const void *const *weights,
                                       void *c, void *stream);
/* nt: c[rows_g, n] = a[rows_g, k] * weights[g][n, k]^T; a, weights and c bf16. */
PMOE_API int pmoe_grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k,
                                       int32_t n, const void *a, const void *const *weights,
                                       void *c, void *stream);
/* tn: out[g][k, n] = beta * out[g] + a[rows_g, k]^T * b[rows_g, n]; a and b bf16, every out[g]
 * of out_dtype (F32: accumulate into f32 master gradients with beta = 1). */
PMOE_API int pmoe_grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k,
                                       int32_t n, const void *a, const void *b, float beta,
                                       int32_t out_dtype, void *const *out, void *stream);

/* ---- router: scores + top-k ----
 * logits [T, E] -> scores [T, E] (softmax or sigmoid), topk_weights [T, K], topk_ids [T, K].
 * tokens, experts >= 1, 1 <= top_k <= experts, renormalize 0 or 1, reserved 0.
 * topk_ids[t, :] are in decreasing order of score. Top-k compares the logits (both score
 * functions are increasing, so the order is the scores' without their rounding ties); ties go
 * to the lower expert id. Non-finite logits fail with PMOE_ERR_NON_FINITE.
 * Without renormalize, topk_weights[t, j] == scores[t, topk_ids[t, j]] exactly.
 * With softmax + renormalize the weights equal a softmax over the selected logits. */
PMOE_API int pmoe_router_forward(const pmoe_router_config *cfg, const float *logits,
                                 float *scores, float *topk_weights, int32_t *topk_ids,
                                 void *stream);
/* grad_logits [T, E] = d loss / d logits (overwritten), from grad_topk_weights [T, K] and,
 * optionally (may be NULL), a direct gradient on the scores grad_scores [T, E] (from the aux
 * loss). scores and topk_ids are the forward's outputs; topk_ids must lie in [0, E). */
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
/* grad_scores [T, E] = grad_loss * d loss / d scores (overwritten); expert_counts are the
 * forward's, each in [0, T * K]. */
PMOE_API int pmoe_aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k,
                                    const int32_t *expert_counts, float coeff, float grad_loss,
                                    float *grad_scores, void *stream);
/* Router z-loss: loss = coeff * mean_t logsumexp(logits_t)^2. Non-finite logits fail with
 * PMOE_ERR_NON_FINITE (forward and backward). */
PMOE_API int pmoe_z_loss_forward(int32_t tokens, int32_t experts, const float *logits,
                                 float coeff, float *loss, void *stream);
/* Adds grad_loss * d loss / d logits into grad_logits [T, E]. */
PMOE_API int pmoe_z_loss_backward(int32_t tokens, int32_t experts, const float *logits,
                                  float coeff, float grad_loss, float *grad_logits,
                                  void *stream);

/* ---- dispatch plan ----
 * For every (token t, choice j) slot s = t * K + j: physical expert p = remap[topk_ids[s]]
 * (remap [logical_experts] may be NULL: identity, then logical_experts must equal
 * physical_experts). 1 <= top_k <= logical_experts; capacity >= 0 or PMOE_CAPACITY_DROPLESS.
 * An expert with more slots than `capacity` keeps, by PMOE_DROP_BY_POSITION, its first
 * `capacity` slots in (token, k) order; by PMOE_DROP_BY_PROBABILITY, the `capacity` slots with
 * the largest topk_weights (ties: the earlier slot). topk_weights [T, K] are read only in that
 * last case (they must then be finite; otherwise they may be NULL).
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
 *                   (a row whose sorted_slot is -1 is written as zeros)
 * permute_backward: grad_x[t, :] = sum_j grad_out[slot_position[t*K+j], :] (kept slots only)
 * combine:          y[t, :] = sum_j w[t, j] * expert_out[slot_position[t*K+j], :]
 * combine_backward: grad_expert_out[pos(t,j), :] = w[t, j] * grad_y[t, :];
 *                   grad_weights[t, j] = <grad_y[t, :], expert_out[pos(t,j), :]> (0 if dropped);
 *                   slot_position must not repeat a row; rows no slot refers to are zeroed
 * `rows` is expert_offsets[P] of the plan, in [0, T * K]; hidden >= 1 is the row length.
 * sorted_slot (first `rows` entries) lies in [-1, T * K), slot_position in [-1, rows).
 * A token whose slots are all dropped gets zeros. Buffers of `rows` rows may be NULL when
 * rows == 0. bf16 math accumulates in f32 and rounds once per output element. */
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

/* ---- activations (dtype: PMOE_DTYPE_F32 or PMOE_DTYPE_BF16 for every buffer) ----
 * in [rows, cols] (SwiGLU: [rows, 2 * cols]) -> out [rows, cols]; rows >= 0 (pointers may be
 * NULL when rows == 0), cols >= 1.
 * backward: grad_in from in and grad_out (grad_in has the shape of in).
 * bf16 is computed in f32 and each output element rounded once (nearest even). */
PMOE_API int pmoe_activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                                     const void *in, void *out, void *stream);
PMOE_API int pmoe_activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                                      const void *in, const void *grad_out, void *grad_in,
                                      void *stream);

/* ---- dtype conversion ----
 * dst[i] = src[i] for i < n, converted from src_dtype to dst_dtype (PMOE_DTYPE_*); f32 -> bf16
 * rounds to nearest even (NaN stays NaN, overflow gives inf); the same dtype copies. dst must
 * not overlap src. n >= 0 (pointers may be NULL when n == 0). The bf16 working copies of f32
 * master weights are made with it. */
PMOE_API int pmoe_convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                          void *dst, void *stream);

/* ---- dense transformer operators ---- */

/* The non-MoE part of a GPT block. A linear layer is pmoe_gemm then pmoe_bias_add; GeLU
 * is pmoe_activation_*. B = batch, T = seq (sequence length), C = channels (model width).
 * batch, rows and n may be 0 (then no pointer is read); every other size must be >= 1.
 * Outputs marked (accumulated) are added to (the caller zeroes them once per step); all other
 * outputs, gradients included, are overwritten. Every reduction runs in a fixed order that
 * does not depend on the thread count.
 * `dtype` (PMOE_DTYPE_F32 or PMOE_DTYPE_BF16) is the storage of the activations, their
 * gradients and the weights the forward reads (for mixed precision: the bf16 working copies);
 * buffers typed `float *` are f32 whatever the dtype: row statistics, attention probabilities,
 * losses and the weight gradients (accumulated into f32). All math is f32 (sums in double
 * where stated; in bf16, attention rounds its f32 probabilities and score gradients as GEMM
 * operands, see pmoe_attention_forward); a bf16 output element is rounded once (nearest even). */

/* Token + position embedding: out[b, t, :] = wte[ids[b, t], :] + wpe[t, :].
 * ids [B, T], each in [0, vocab); wte [vocab, C]; wpe [max_seq, C] with seq <= max_seq;
 * out [B, T, C]. */
PMOE_API int pmoe_embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                                    int32_t vocab, int32_t max_seq, const int32_t *ids,
                                    const void *wte, const void *wpe, void *out, void *stream);
/* dwte[v, :] += sum of dout[b, t, :] over the (b, t) with ids[b, t] == v   (accumulated)
 * dwpe[t, :] += sum_b dout[b, t, :]                                        (accumulated)
 * Both sums run over (b, t) in row-major order. */
PMOE_API int pmoe_embedding_backward(int32_t dtype, int32_t batch, int32_t seq,
                                     int32_t channels, int32_t vocab, int32_t max_seq,
                                     const int32_t *ids, const void *dout, float *dwte,
                                     float *dwpe, void *stream);

/* LayerNorm over each row of x [rows, cols]:
 *   mean[r] = mean_c x[r, c];  rstd[r] = 1 / sqrt(mean_c (x[r, c] - mean[r])^2 + eps);
 *   out[r, c] = (x[r, c] - mean[r]) * rstd[r] * weight[c] + bias[c].
 * weight, bias [cols]; mean, rstd [rows] are saved for the backward. eps > 0. */
PMOE_API int pmoe_layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps,
                                    const void *x, const void *weight, const void *bias,
                                    void *out, float *mean, float *rstd, void *stream);
/* With xhat = (x - mean) * rstd and g = dout * weight:
 *   dx[r, c] = rstd[r] * (g[r, c] - mean_c g[r, :] - xhat[r, c] * mean_c (g * xhat)[r, :])
 *                                                (overwritten)
 *   dweight[c] += sum_r dout[r, c] * xhat[r, c]   (accumulated)
 *   dbias[c]   += sum_r dout[r, c]                (accumulated) */
PMOE_API int pmoe_layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                                     const void *weight, const float *mean, const float *rstd,
                                     const void *dout, void *dx, float *dweight, float *dbias,
                                     void *stream);
/* RMSNorm over each row of x [rows, cols]:
 *   rstd[r] = 1 / sqrt(mean_c x[r, c]^2 + eps);  out[r, c] = x[r, c] * rstd[r] * weight[c].
 * rstd [rows] is saved for the backward. eps > 0. */
PMOE_API int pmoe_rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps,
                                  const void *x, const void *weight, void *out, float *rstd,
                                  void *stream);
/* With xhat = x * rstd and g = dout * weight:
 *   dx[r, c] = rstd[r] * (g[r, c] - xhat[r, c] * mean_c (g * xhat)[r, :])   (overwritten)
 *   dweight[c] += sum_r dout[r, c] * xhat[r, c]   (accumulated) */
PMOE_API int pmoe_rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                                   const void *weight, const float *rstd, const void *dout,
                                   void *dx, float *dweight, void *stream);

/* Bias over rows, in place: x[r, c] += bias[c] for x [rows, cols]. */
PMOE_API int pmoe_bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x,
                           void *stream);
/* Bias gradient: dbias[c] += sum_r dout[r, c] (accumulated; summed in double in row order). */
PMOE_API int pmoe_bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout,
                                float *dbias, void *stream);

/* Flat elementwise ops over n elements, every buffer of `dtype`.
 * add:        out[i] = a[i] + b[i]   (out may alias a or b; the residual connection)
 * accumulate: y[i] += x[i]           (gradient accumulation, e.g. into a residual gradient)
 * scale:      x[i] *= alpha          (in place; gradient clipping) */
PMOE_API int pmoe_add(int32_t dtype, int64_t n, const void *a, const void *b, void *out,
                      void *stream);
PMOE_API int pmoe_accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *stream);
PMOE_API int pmoe_scale(int32_t dtype, int64_t n, float alpha, void *x, void *stream);

/* Causal multi-head self-attention, H heads of size D = C / H (C divisible by H):
 * qkv [B, T, 3C], each row = [q (C) | k (C) | v (C)], head h owns columns [h*D, (h+1)*D) of each;
 *   att[b, h, t, s] = softmax_{s <= t}(q[b, t, h] . k[b, s, h] / sqrt(D)), and 0 for s > t;
 *   out[b, t, h*D + d] = sum_{s <= t} att[b, h, t, s] * v[b, s, h*D + d].
 * att [B, H, T, T] holds the probabilities for the backward, in f32 whatever the dtype; out
 * [B, T, C]. In bf16 the probabilities (here) and the score gradients (backward) are rounded to
 * bf16 (nearest even) as operands of their products with v, dout, k and q, as FlashAttention
 * rounds P before P V; these products accumulate in f32. */
PMOE_API int pmoe_attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                                    int32_t heads, const void *qkv, float *att, void *out,
                                    void *stream);
/* dqkv [B, T, 3C] = d loss / d qkv (overwritten) from dout [B, T, C], the forward's qkv
 * and att. */
PMOE_API int pmoe_attention_backward(int32_t dtype, int32_t batch, int32_t seq,
                                     int32_t channels, int32_t heads, const void *qkv,
                                     const float *att, const void *dout, void *dqkv,
                                     void *stream);

/* Fused softmax cross-entropy over the vocabulary: logits [rows, vocab], targets [rows], each
 * in [0, vocab) or -1 (row ignored).
 *   losses[r] = logsumexp(logits[r, :]) - logits[r, targets[r]], or 0 for an ignored row;
 *   mean_loss (may be NULL) = sum of losses over kept rows / their count (0 if none),
 *   summed in double in row order; kept_rows (may be NULL) = that count.
 * Non-finite logits give non-finite losses. */
PMOE_API int pmoe_cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab,
                                        const void *logits, const int32_t *targets,
                                        float *losses, float *mean_loss, int32_t *kept_rows,
                                        void *stream);
/* dlogits[r, v] = (softmax(logits[r, :])[v] - (v == targets[r])) * grad_scale, and 0 for an
 * ignored row (overwritten; grad_scale is e.g. 1 / kept_rows for the mean loss).
 * dlogits may alias logits (computed in place). */
PMOE_API int pmoe_cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab,
                                         const void *logits, const int32_t *targets,
                                         float grad_scale, void *dlogits, void *stream);

/* AdamW over n parameters in flat buffers, step t >= 1 (1 on the first update), on the
 * gradients scaled by grad_scale >= 0 (gradient clipping's factor, 1 for none): g = grads[i] *
 * grad_scale, the value pmoe_scale would leave in grads, which are only read here:
 *   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2;
 *   p -= lr * ((m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * p)
 * (decoupled weight decay, applied with p before the update). params, m, v are updated in
 * place; 0 <= beta1, beta2 < 1; eps > 0; lr >= 0; weight_decay >= 0.
 * working (may be NULL: not written) receives the updated params stored as working_dtype
 * (PMOE_DTYPE_F32 or _BF16, checked even when working is NULL; bf16 rounds to nearest even):
 * mixed precision's working copy of f32 master weights, refreshed in the same pass. It must
 * not overlap params, grads, m or v. */
PMOE_API int pmoe_adamw_step(int64_t n, float *params, const float *grads, float grad_scale,
                             float *m, float *v, float lr, float beta1, float beta2, float eps,
                             float weight_decay, int32_t step, int32_t working_dtype,
                             void *working, void *stream);
/* Global gradient norm: *sum_squares = sum_i x[i]^2 over n elements, in double, in a
 * fixed blocking of i; the caller adds the results of several buffers and takes the sqrt. */
PMOE_API int pmoe_sum_squares(int64_t n, const float *x, double *sum_squares, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* PANAMOE_H */
