// Argument checks of the entry points of panamoe.h, one function per entry point, called by
// api.cpp before it runs a library's implementation; both compiled into the CPU library and into
// the CUDA library (and its host-harness build), so that the same bad argument gets the same
// status and message from every implementation.
//
// They check what the host sees without reading array contents: sizes, scalars and pointers
// (NULL only where the call has elements to read or write). When a call has no work (rows == 0,
// batch == 0, ...) they return kNoWork before the pointer checks, and api.cpp returns PMOE_OK
// (a call that still writes an output, such as pmoe_sum_squares's 0, has work).
// Array contents (ids in range, finite values) are checked where the data lives: the CPU with
// require_ids_in_range / require_finite, CUDA on the device (common.cuh's InputChecks), both
// worded by the fail_* functions below.
#pragma once

#include "errors.hpp"

namespace pmoe {

// A check's verdict on a call that has nothing to do: valid, and not to be run. Not a status of
// panamoe.h: only PMOE_CHECK_ARGS reads it.
constexpr int kNoWork = -1;

// The first statement of an entry point: clears the thread's message, runs the argument check
// `expr`, and returns its status if it failed, or PMOE_OK if the call has no work.
#define PMOE_CHECK_ARGS(expr)                                                                 \
    do {                                                                                      \
        clear_error();                                                                        \
        const int pmoe_checked_ = (expr);                                                     \
        if (pmoe_checked_ == kNoWork) return PMOE_OK;                                         \
        if (pmoe_checked_ != PMOE_OK) return pmoe_checked_;                                   \
    } while (0)

// ---- errors in array contents ----
// "topk_ids[17] = 9 is out of range [0, 8)".
int fail_out_of_range(const char *name, int64_t i, int32_t value, int64_t lo, int64_t hi);
// "logits[3, 5] = nan is not finite (token 3, expert 5)": element (row, col) of a matrix.
int fail_not_finite(const char *name, int64_t row, int64_t col, float value, const char *row_name,
                    const char *col_name);

// ---- library ----
int check_find_nonfinite(int32_t dtype, int64_t n, const void *x, const int64_t *first_index);

// ---- GEMM ----
int check_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, const void *a,
               int32_t lda, const void *b, int32_t ldb, const void *c, int32_t ldc);
// pmoe_gemm_bf16: c_dtype, then as check_gemm.
int check_gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                    const void *a, int32_t lda, const void *b, int32_t ldb, int32_t c_dtype,
                    const void *c, int32_t ldc);
// groups >= 0, offsets non-NULL, k >= 0, n >= 0 (offsets' contents are checked afterwards).
int check_grouped_sizes(int32_t groups, const int32_t *offsets, int32_t k, int32_t n);
// Errors about offsets' and weights' contents, found by the CPU on the host or by CUDA on the
// device: "offsets[0] must be 0, got 3", "offsets must not decrease: ...",
// "weights[2] must not be NULL (group 2 has 5 rows)".
int fail_offsets_start(int32_t first);
int fail_offsets_decrease(int64_t g, int32_t value, int32_t previous);
int fail_null_weight(int64_t g, int32_t rows);
int fail_null_out(int64_t g);

// ---- router and load-balancing losses ----
int check_router_config(const pmoe_router_config *cfg);
int check_router_forward(const pmoe_router_config *cfg, const float *logits, const float *scores,
                         const float *topk_weights, const int32_t *topk_ids);
int check_router_backward(const pmoe_router_config *cfg, const float *scores,
                          const int32_t *topk_ids, const float *grad_topk_weights,
                          const float *grad_logits);
int check_aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k, const float *scores,
                           const int32_t *topk_ids, const float *loss,
                           const int32_t *expert_counts);
int check_aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k,
                            const int32_t *expert_counts, const float *grad_scores);
// The z-loss forward (output "loss") and backward (output "grad_logits").
int check_z_loss(int32_t tokens, int32_t experts, const float *logits, const char *out_name,
                 const float *out);

// ---- dispatch, permute, combine ----
// The scalar fields of a dispatch configuration.
int check_dispatch_config(const pmoe_dispatch_config *cfg);
int check_dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                        const float *topk_weights, const int32_t *remap,
                        const int32_t *expert_counts, const int32_t *expert_offsets,
                        const int32_t *slot_position, const int32_t *sorted_slot);
int check_permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                  const void *x, const int32_t *sorted_slot, const void *out);
int check_permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                           int32_t hidden, const void *grad_out, const int32_t *slot_position,
                           const void *grad_x);
int check_combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                  const void *expert_out, const float *topk_weights, const int32_t *slot_position,
                  const void *y);
int check_combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                           int32_t hidden, const void *grad_y, const void *expert_out,
                           const float *topk_weights, const int32_t *slot_position,
                           const void *grad_expert_out, const float *grad_weights);
// "slot_position[7] = 3 repeats slot_position[2]" (combine backward).
int fail_repeated_row(int64_t slot, int32_t row, int64_t owner);

// ---- activations and conversion ----
int check_activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                             const void *in, const void *out);
int check_activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                              const void *in, const void *grad_out, const void *grad_in);
int check_convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                  const void *dst);

// ---- dense transformer operators (dtype: the activations' and weights' storage) ----
int check_embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                            int32_t vocab, int32_t max_seq, const int32_t *ids, const void *wte,
                            const void *wpe, const void *out);
int check_embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                             int32_t vocab, int32_t max_seq, const int32_t *ids, const void *dout,
                             const float *dwte, const float *dwpe);
int check_layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                            const void *weight, const void *bias, const void *out,
                            const float *mean, const float *rstd);
int check_layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                             const void *weight, const float *mean, const float *rstd,
                             const void *dout, const void *dx, const float *dweight,
                             const float *dbias);
int check_rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                          const void *weight, const void *out, const float *rstd);
int check_rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                           const void *weight, const float *rstd, const void *dout,
                           const void *dx, const float *dweight);
int check_bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, const void *x);
int check_bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout,
                        const float *dbias);
int check_add(int32_t dtype, int64_t n, const void *a, const void *b, const void *out);
int check_accumulate(int32_t dtype, int64_t n, const void *x, const void *y);
int check_scale(int32_t dtype, int64_t n, float alpha, const void *x);
int check_attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                            int32_t heads, const void *qkv, const float *att, const void *out);
int check_attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                             int32_t heads, const void *qkv, const float *att, const void *dout,
                             const void *dqkv);
int check_cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                                const int32_t *targets, const float *losses);
int check_cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                                 const int32_t *targets, float grad_scale, const void *dlogits);
int check_adamw_step(int64_t n, const float *params, const float *grads, float grad_scale,
                     const float *m, const float *v, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int32_t step, int32_t working_dtype);
int check_sum_squares(int64_t n, const float *x, const double *sum_squares);

} // namespace pmoe
