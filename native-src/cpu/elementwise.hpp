// The elementwise span functions (elementwise_spans.inc) at each instruction-set level: the
// baseline's in elementwise.cpp, the AVX-512 ones in elementwise_avx512.cpp (at_level_in_use
// picks the level's).
#pragma once

#include <cstdint>

#include "common.hpp"

namespace pmoe {

// One AdamW step's constants (pmoe_adamw_step's arguments and its bias corrections).
struct AdamWStep {
    float grad_scale, lr, beta1, beta2, eps, weight_decay, correction1, correction2;
};

#define PMOE_ELEMENTWISE_SPANS                                                                      \
    template <typename T> void bias_add_span(int64_t n, const T *bias, T *row);                     \
    template <typename T>                                                                           \
    void bias_gradient_block(int64_t rows, int64_t cols, int64_t c0, int64_t width, const T *dout, \
                             float *dbias);                                                         \
    template <typename T> void add_span(int64_t n, const T *a, const T *b, T *out);                 \
    template <typename T> void accumulate_span(int64_t n, const T *x, T *y);                        \
    template <typename T> void scale_span(int64_t n, float alpha, T *x);                            \
    template <typename S, typename D> void convert_span(int64_t n, const S *src, D *dst);           \
    template <typename W>                                                                           \
    void adamw_span(const AdamWStep &s, int64_t n, float *params, const float *grads, float *m,     \
                    float *v, W *copy);

namespace avx2_elem {
PMOE_ELEMENTWISE_SPANS
} // namespace avx2_elem
namespace avx512_elem {
PMOE_ELEMENTWISE_SPANS
} // namespace avx512_elem
#undef PMOE_ELEMENTWISE_SPANS

} // namespace pmoe
