// The entry points of panamoe.h that every library shares (the CPU library, the CUDA library and
// its host-harness build compile this file): each checks its arguments (checks.hpp), returns
// PMOE_OK when the call has no work, then runs its library's implementation (impl.hpp). So the
// same bad argument gets the same status and message from every library, and no library can
// skip a check. pmoe_last_error is errors.cpp; pmoe_backend_name and the CPU instruction-set
// calls differ by library and stay there.
#include <atomic>

#include "checks.hpp"
#include "impl.hpp"

namespace pmoe {

namespace {
std::atomic<int> team_size{0};
} // namespace

int requested_threads() { return team_size.load(std::memory_order_relaxed); }

} // namespace pmoe

using namespace pmoe;

namespace {
// The grouped GEMMs check their sizes alike, then run the library's product `impl` (the
// contents of offsets are the library's to check, where the data lives).
template <typename... P, typename... A>
int grouped(int (*impl)(P...), int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
            A... rest) {
    PMOE_CHECK_ARGS(check_grouped_sizes(groups, offsets, k, n));
    return impl(groups, offsets, k, n, rest...);
}
} // namespace

extern "C" {

PMOE_API int pmoe_version(int32_t *major, int32_t *minor, int32_t *patch) {
    clear_error();
    PMOE_CHECK(require_non_null("major", major));
    PMOE_CHECK(require_non_null("minor", minor));
    PMOE_CHECK(require_non_null("patch", patch));
    *major = 0;
    *minor = 1;
    *patch = 0;
    return PMOE_OK;
}

PMOE_API int pmoe_noop(void) { return PMOE_OK; }

PMOE_API int pmoe_set_num_threads(int32_t n) {
    clear_error();
    PMOE_CHECK(require_positive("n", n));
    team_size.store(n, std::memory_order_relaxed);
    return PMOE_OK;
}

PMOE_API int pmoe_get_num_threads(int32_t *n) {
    clear_error();
    PMOE_CHECK(require_non_null("n", n));
    *n = num_threads();
    return PMOE_OK;
}

PMOE_API int pmoe_find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index,
                                 void *stream) {
    PMOE_CHECK_ARGS(check_find_nonfinite(dtype, n, x, first_index));
    return pmoe_impl::find_nonfinite(dtype, n, x, first_index, stream);
}

PMOE_API int pmoe_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                       float alpha, const float *a, int32_t lda, const float *b, int32_t ldb,
                       float beta, float *c, int32_t ldc, void *stream) {
    PMOE_CHECK_ARGS(check_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc));
    return pmoe_impl::gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream);
}

PMOE_API int pmoe_grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream) {
    return grouped(pmoe_impl::grouped_gemm_nn, groups, offsets, k, n, a, weights, c, stream);
}

PMOE_API int pmoe_grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *b, float beta, float *const *out,
                                  void *stream) {
    return grouped(pmoe_impl::grouped_gemm_tn, groups, offsets, k, n, a, b, beta, out, stream);
}

PMOE_API int pmoe_grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream) {
    return grouped(pmoe_impl::grouped_gemm_nt, groups, offsets, k, n, a, weights, c, stream);
}

PMOE_API int pmoe_gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                            float alpha, const void *a, int32_t lda, const void *b, int32_t ldb,
                            float beta, int32_t c_dtype, void *c, int32_t ldc, void *stream) {
    PMOE_CHECK_ARGS(check_gemm_bf16(trans_a, trans_b, m, n, k, a, lda, b, ldb, c_dtype, c, ldc));
    return pmoe_impl::gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c_dtype, c,
                                ldc, stream);
}

PMOE_API int pmoe_grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                       const void *a, const void *const *weights, void *c,
                                       void *stream) {
    return grouped(pmoe_impl::grouped_gemm_nn_bf16, groups, offsets, k, n, a, weights, c, stream);
}

PMOE_API int pmoe_grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                       const void *a, const void *b, float beta, int32_t out_dtype,
                                       void *const *out, void *stream) {
    PMOE_CHECK_ARGS(require_dtype("out_dtype", out_dtype));
    return grouped(pmoe_impl::grouped_gemm_tn_bf16, groups, offsets, k, n, a, b, beta, out_dtype,
                   out, stream);
}

PMOE_API int pmoe_grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                       const void *a, const void *const *weights, void *c,
                                       void *stream) {
    return grouped(pmoe_impl::grouped_gemm_nt_bf16, groups, offsets, k, n, a, weights, c, stream);
}

PMOE_API int pmoe_router_forward(const pmoe_router_config *cfg, const float *logits, float *scores,
                                 float *topk_weights, int32_t *topk_ids, void *stream) {
    PMOE_CHECK_ARGS(check_router_forward(cfg, logits, scores, topk_weights, topk_ids));
    return pmoe_impl::router_forward(cfg, logits, scores, topk_weights, topk_ids, stream);
}

PMOE_API int pmoe_router_backward(const pmoe_router_config *cfg, const float *scores,
                                  const int32_t *topk_ids, const float *grad_topk_weights,
                                  const float *grad_scores, float *grad_logits, void *stream) {
    PMOE_CHECK_ARGS(check_router_backward(cfg, scores, topk_ids, grad_topk_weights, grad_logits));
    return pmoe_impl::router_backward(cfg, scores, topk_ids, grad_topk_weights, grad_scores,
                                      grad_logits, stream);
}

PMOE_API int pmoe_aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k,
                                   const float *scores, const int32_t *topk_ids, float coeff,
                                   float *loss, int32_t *expert_counts, void *stream) {
    PMOE_CHECK_ARGS(check_aux_loss_forward(tokens, experts, top_k, scores, topk_ids, loss,
                                           expert_counts));
    return pmoe_impl::aux_loss_forward(tokens, experts, top_k, scores, topk_ids, coeff, loss,
                                       expert_counts, stream);
}

PMOE_API int pmoe_aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k,
                                    const int32_t *expert_counts, float coeff, float grad_loss,
                                    float *grad_scores, void *stream) {
    PMOE_CHECK_ARGS(check_aux_loss_backward(tokens, experts, top_k, expert_counts, grad_scores));
    return pmoe_impl::aux_loss_backward(tokens, experts, top_k, expert_counts, coeff, grad_loss,
                                        grad_scores, stream);
}

PMOE_API int pmoe_z_loss_forward(int32_t tokens, int32_t experts, const float *logits, float coeff,
                                 float *loss, void *stream) {
    PMOE_CHECK_ARGS(check_z_loss(tokens, experts, logits, "loss", loss));
    return pmoe_impl::z_loss_forward(tokens, experts, logits, coeff, loss, stream);
}

PMOE_API int pmoe_z_loss_backward(int32_t tokens, int32_t experts, const float *logits, float coeff,
                                  float grad_loss, float *grad_logits, void *stream) {
    PMOE_CHECK_ARGS(check_z_loss(tokens, experts, logits, "grad_logits", grad_logits));
    return pmoe_impl::z_loss_backward(tokens, experts, logits, coeff, grad_loss, grad_logits,
                                      stream);
}

PMOE_API int pmoe_dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                                const float *topk_weights, const int32_t *remap,
                                int32_t *expert_counts, int32_t *expert_offsets,
                                int32_t *slot_position, int32_t *sorted_slot, void *stream) {
    PMOE_CHECK_ARGS(check_dispatch_plan(cfg, topk_ids, topk_weights, remap, expert_counts,
                                        expert_offsets, slot_position, sorted_slot));
    return pmoe_impl::dispatch_plan(cfg, topk_ids, topk_weights, remap, expert_counts,
                                    expert_offsets, slot_position, sorted_slot, stream);
}

PMOE_API int pmoe_permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                          int32_t hidden, const void *x, const int32_t *sorted_slot, void *out,
                          void *stream) {
    PMOE_CHECK_ARGS(check_permute(dtype, tokens, top_k, rows, hidden, x, sorted_slot, out));
    return pmoe_impl::permute(dtype, tokens, top_k, rows, hidden, x, sorted_slot, out, stream);
}

PMOE_API int pmoe_permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                                   int32_t hidden, const void *grad_out,
                                   const int32_t *slot_position, void *grad_x, void *stream) {
    PMOE_CHECK_ARGS(check_permute_backward(dtype, tokens, top_k, rows, hidden, grad_out,
                                           slot_position, grad_x));
    return pmoe_impl::permute_backward(dtype, tokens, top_k, rows, hidden, grad_out, slot_position,
                                       grad_x, stream);
}

PMOE_API int pmoe_combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                          int32_t hidden, const void *expert_out, const float *topk_weights,
                          const int32_t *slot_position, void *y, void *stream) {
    PMOE_CHECK_ARGS(check_combine(dtype, tokens, top_k, rows, hidden, expert_out, topk_weights,
                                  slot_position, y));
    return pmoe_impl::combine(dtype, tokens, top_k, rows, hidden, expert_out, topk_weights,
                              slot_position, y, stream);
}

PMOE_API int pmoe_combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows,
                                   int32_t hidden, const void *grad_y, const void *expert_out,
                                   const float *topk_weights, const int32_t *slot_position,
                                   void *grad_expert_out, float *grad_weights, void *stream) {
    PMOE_CHECK_ARGS(check_combine_backward(dtype, tokens, top_k, rows, hidden, grad_y, expert_out,
                                           topk_weights, slot_position, grad_expert_out,
                                           grad_weights));
    return pmoe_impl::combine_backward(dtype, tokens, top_k, rows, hidden, grad_y, expert_out,
                                       topk_weights, slot_position, grad_expert_out, grad_weights,
                                       stream);
}

PMOE_API int pmoe_activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                                     const void *in, void *out, void *stream) {
    PMOE_CHECK_ARGS(check_activation_forward(dtype, act, rows, cols, in, out));
    return pmoe_impl::activation_forward(dtype, act, rows, cols, in, out, stream);
}

PMOE_API int pmoe_activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                                      const void *in, const void *grad_out, void *grad_in,
                                      void *stream) {
    PMOE_CHECK_ARGS(check_activation_backward(dtype, act, rows, cols, in, grad_out, grad_in));
    return pmoe_impl::activation_backward(dtype, act, rows, cols, in, grad_out, grad_in, stream);
}

PMOE_API int pmoe_convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                          void *dst, void *stream) {
    PMOE_CHECK_ARGS(check_convert(n, src_dtype, src, dst_dtype, dst));
    return pmoe_impl::convert(n, src_dtype, src, dst_dtype, dst, stream);
}

PMOE_API int pmoe_embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                                    int32_t vocab, int32_t max_seq, const int32_t *ids,
                                    const void *wte, const void *wpe, void *out, void *stream) {
    PMOE_CHECK_ARGS(check_embedding_forward(dtype, batch, seq, channels, vocab, max_seq, ids, wte,
                                            wpe, out));
    return pmoe_impl::embedding_forward(dtype, batch, seq, channels, vocab, max_seq, ids, wte, wpe,
                                        out, stream);
}

PMOE_API int pmoe_embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                                     int32_t vocab, int32_t max_seq, const int32_t *ids,
                                     const void *dout, float *dwte, float *dwpe, void *stream) {
    PMOE_CHECK_ARGS(check_embedding_backward(dtype, batch, seq, channels, vocab, max_seq, ids, dout,
                                             dwte, dwpe));
    return pmoe_impl::embedding_backward(dtype, batch, seq, channels, vocab, max_seq, ids, dout,
                                         dwte, dwpe, stream);
}

PMOE_API int pmoe_layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps,
                                    const void *x, const void *weight, const void *bias, void *out,
                                    float *mean, float *rstd, void *stream) {
    PMOE_CHECK_ARGS(check_layernorm_forward(dtype, rows, cols, eps, x, weight, bias, out, mean,
                                            rstd));
    return pmoe_impl::layernorm_forward(dtype, rows, cols, eps, x, weight, bias, out, mean, rstd,
                                        stream);
}

PMOE_API int pmoe_layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                                     const void *weight, const float *mean, const float *rstd,
                                     const void *dout, void *dx, float *dweight, float *dbias,
                                     void *stream) {
    PMOE_CHECK_ARGS(check_layernorm_backward(dtype, rows, cols, x, weight, mean, rstd, dout, dx,
                                             dweight, dbias));
    return pmoe_impl::layernorm_backward(dtype, rows, cols, x, weight, mean, rstd, dout, dx,
                                         dweight, dbias, stream);
}

PMOE_API int pmoe_rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps,
                                  const void *x, const void *weight, void *out, float *rstd,
                                  void *stream) {
    PMOE_CHECK_ARGS(check_rmsnorm_forward(dtype, rows, cols, eps, x, weight, out, rstd));
    return pmoe_impl::rmsnorm_forward(dtype, rows, cols, eps, x, weight, out, rstd, stream);
}

PMOE_API int pmoe_rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x,
                                   const void *weight, const float *rstd, const void *dout,
                                   void *dx, float *dweight, void *stream) {
    PMOE_CHECK_ARGS(check_rmsnorm_backward(dtype, rows, cols, x, weight, rstd, dout, dx, dweight));
    return pmoe_impl::rmsnorm_backward(dtype, rows, cols, x, weight, rstd, dout, dx, dweight,
                                       stream);
}

PMOE_API int pmoe_bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x,
                           void *stream) {
    PMOE_CHECK_ARGS(check_bias_add(dtype, rows, cols, bias, x));
    return pmoe_impl::bias_add(dtype, rows, cols, bias, x, stream);
}

PMOE_API int pmoe_bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout,
                                float *dbias, void *stream) {
    PMOE_CHECK_ARGS(check_bias_backward(dtype, rows, cols, dout, dbias));
    return pmoe_impl::bias_backward(dtype, rows, cols, dout, dbias, stream);
}

PMOE_API int pmoe_add(int32_t dtype, int64_t n, const void *a, const void *b, void *out,
                      void *stream) {
    PMOE_CHECK_ARGS(check_add(dtype, n, a, b, out));
    return pmoe_impl::add(dtype, n, a, b, out, stream);
}

PMOE_API int pmoe_accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *stream) {
    PMOE_CHECK_ARGS(check_accumulate(dtype, n, x, y));
    return pmoe_impl::accumulate(dtype, n, x, y, stream);
}

PMOE_API int pmoe_scale(int32_t dtype, int64_t n, float alpha, void *x, void *stream) {
    PMOE_CHECK_ARGS(check_scale(dtype, n, alpha, x));
    return pmoe_impl::scale(dtype, n, alpha, x, stream);
}

PMOE_API int pmoe_attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                                    int32_t heads, const void *qkv, float *att, void *out,
                                    void *stream) {
    PMOE_CHECK_ARGS(check_attention_forward(dtype, batch, seq, channels, heads, qkv, att, out));
    return pmoe_impl::attention_forward(dtype, batch, seq, channels, heads, qkv, att, out, stream);
}

PMOE_API int pmoe_attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels,
                                     int32_t heads, const void *qkv, const float *att,
                                     const void *dout, void *dqkv, void *stream) {
    PMOE_CHECK_ARGS(check_attention_backward(dtype, batch, seq, channels, heads, qkv, att, dout,
                                             dqkv));
    return pmoe_impl::attention_backward(dtype, batch, seq, channels, heads, qkv, att, dout, dqkv,
                                         stream);
}

PMOE_API int pmoe_cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab,
                                        const void *logits, const int32_t *targets, float *losses,
                                        float *mean_loss, int32_t *kept_rows, void *stream) {
    PMOE_CHECK_ARGS(check_cross_entropy_forward(dtype, rows, vocab, logits, targets, losses));
    return pmoe_impl::cross_entropy_forward(dtype, rows, vocab, logits, targets, losses, mean_loss,
                                            kept_rows, stream);
}

PMOE_API int pmoe_cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab,
                                         const void *logits, const int32_t *targets,
                                         float grad_scale, void *dlogits, void *stream) {
    PMOE_CHECK_ARGS(check_cross_entropy_backward(dtype, rows, vocab, logits, targets, grad_scale,
                                                 dlogits));
    return pmoe_impl::cross_entropy_backward(dtype, rows, vocab, logits, targets, grad_scale,
                                             dlogits, stream);
}

PMOE_API int pmoe_adamw_step(int64_t n, float *params, const float *grads, float grad_scale,
                             float *m, float *v, float lr, float beta1, float beta2, float eps,
                             float weight_decay, int32_t step, int32_t working_dtype,
                             void *working, void *stream) {
    PMOE_CHECK_ARGS(check_adamw_step(n, params, grads, grad_scale, m, v, lr, beta1, beta2, eps,
                                     weight_decay, step, working_dtype));
    return pmoe_impl::adamw_step(n, params, grads, grad_scale, m, v, lr, beta1, beta2, eps,
                                 weight_decay, step, working_dtype, working, stream);
}

PMOE_API int pmoe_sum_squares(int64_t n, const float *x, double *sum_squares, void *stream) {
    PMOE_CHECK_ARGS(check_sum_squares(n, x, sum_squares));
    return pmoe_impl::sum_squares(n, x, sum_squares, stream);
}
} // extern "C"
