// The implementation each library gives of the entry points of panamoe.h. The entry points
// themselves are common/api.cpp, compiled into every library: it checks the arguments
// (checks.hpp), returns PMOE_OK when the call has no work, and only then calls the function of
// the same name here. A library starts from valid sizes and pointers and checks only what is
// its own: array contents, where the data lives (the CPU on the host, CUDA on the device, worded
// by checks.hpp), and its own limits (e.g. the alignment of CUDA's tensor-core GEMM). A namespace
// of its own, outside pmoe: each library brings its names into it (cpu/common.hpp,
// cuda/common.cuh).
#pragma once

#include "panamoe.h"

namespace pmoe {
// The team size last given to pmoe_set_num_threads, 0 before any (api.cpp).
int requested_threads();
// The team size in use: requested_threads() or the library's default (each library).
int num_threads();
} // namespace pmoe

namespace pmoe_impl {

int find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index, void *stream);
int gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
         const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
         int32_t ldc, void *stream);
int grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *const *weights, float *c, void *stream);
int grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *const *weights, float *c, void *stream);
int grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *b, float beta, float *const *out, void *stream);
int gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
              const void *a, int32_t lda, const void *b, int32_t ldb, float beta, int32_t c_dtype,
              void *c, int32_t ldc, void *stream);
int grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *stream);
int grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *stream);
int grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *b, float beta, int32_t out_dtype,
                         void *const *out, void *stream);
int router_forward(const pmoe_router_config *cfg, const float *logits, float *scores,
                   float *topk_weights, int32_t *topk_ids, void *stream);
int router_backward(const pmoe_router_config *cfg, const float *scores, const int32_t *topk_ids,
                    const float *grad_topk_weights, const float *grad_scores, float *grad_logits,
                    void *stream);
int aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k, const float *scores,
                     const int32_t *topk_ids, float coeff, float *loss, int32_t *expert_counts,
                     void *stream);
int aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k, const int32_t *expert_counts,
                      float coeff, float grad_loss, float *grad_scores, void *stream);
int z_loss_forward(int32_t tokens, int32_t experts, const float *logits, float coeff, float *loss,
                   void *stream);
int z_loss_backward(int32_t tokens, int32_t experts, const float *logits, float coeff,
                    float grad_loss, float *grad_logits, void *stream);
int dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids,
                  const float *topk_weights, const int32_t *remap, int32_t *expert_counts,
                  int32_t *expert_offsets, int32_t *slot_position, int32_t *sorted_slot,
                  void *stream);
int permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
            const void *x, const int32_t *sorted_slot, void *out, void *stream);
int permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                     const void *grad_out, const int32_t *slot_position, void *grad_x,
                     void *stream);
int combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
            const void *expert_out, const float *topk_weights, const int32_t *slot_position,
            void *y, void *stream);
int combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden,
                     const void *grad_y, const void *expert_out, const float *topk_weights,
                     const int32_t *slot_position, void *grad_expert_out, float *grad_weights,
                     void *stream);
int activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                       void *out, void *stream);
int activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                        const void *grad_out, void *grad_in, void *stream);
int convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst,
            void *stream);
int embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab,
                      int32_t max_seq, const int32_t *ids, const void *wte, const void *wpe,
                      void *out, void *stream);
int embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab,
                       int32_t max_seq, const int32_t *ids, const void *dout, float *dwte,
                       float *dwpe, void *stream);
int layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                      const void *weight, const void *bias, void *out, float *mean, float *rstd,
                      void *stream);
int layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                       const float *mean, const float *rstd, const void *dout, void *dx,
                       float *dweight, float *dbias, void *stream);
int rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                    const void *weight, void *out, float *rstd, void *stream);
int rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                     const float *rstd, const void *dout, void *dx, float *dweight, void *stream);
int bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x, void *stream);
int bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout, float *dbias,
                  void *stream);
int add(int32_t dtype, int64_t n, const void *a, const void *b, void *out, void *stream);
int accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *stream);
int scale(int32_t dtype, int64_t n, float alpha, void *x, void *stream);
int attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                      const void *qkv, float *att, void *out, void *stream);
int attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads,
                       const void *qkv, const float *att, const void *dout, void *dqkv,
                       void *stream);
int cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                          const int32_t *targets, float *losses, float *mean_loss,
                          int32_t *kept_rows, void *stream);
int cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits,
                           const int32_t *targets, float grad_scale, void *dlogits, void *stream);
int adamw_step(int64_t n, float *params, const float *grads, float grad_scale, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float weight_decay, int32_t step,
               int32_t working_dtype, void *working, void *stream);
int sum_squares(int64_t n, const float *x, double *sum_squares, void *stream);

} // namespace pmoe_impl
