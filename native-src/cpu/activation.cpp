// Activations: GeLU (tanh approximation), SiLU and SwiGLU, forward and backward, with f32 or
// bf16 storage and f32 math.
// The math on a span (activation_spans.inc) goes through sigmoid_approx (common.hpp), which
// vectorises: 8 lanes wide here, 16 in activation_avx512.cpp, by the level in use at each call
// (the same bits either way). Parallel over rows; every element is computed the same way
// whatever thread runs it.
#include <algorithm>

#include "activation.hpp"
#include "common.hpp"

namespace pmoe {
namespace avx2_act {
#include "activation_spans.inc"
} // namespace avx2_act

namespace {

// The span functions of the level in use.
struct Spans {
    decltype(&avx2_act::forward_span) forward;
    decltype(&avx2_act::backward_span) backward;
};

const Spans &spans_in_use() {
    static const Spans avx2{&avx2_act::forward_span, &avx2_act::backward_span};
    static const Spans avx512{&avx512_act::forward_span, &avx512_act::backward_span};
    return cpu_isa_level() >= PMOE_ISA_AVX512 ? avx512 : avx2;
}

// bf16 rows go through f32 chunks on the stack (small enough to stay in L1): widening, the f32
// math and rounding as separate loops take 20-30% less time than one loop doing all three
// (which spills its registers), with the same values (the widening is exact, the rounding
// happens once, the math is the f32 path's).
constexpr int64_t kChunk = 256;

void widen(int64_t n, const uint16_t *src, float *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = load(src[i]);
}

void narrow(int64_t n, const float *src, uint16_t *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = store<uint16_t>(src[i]);
}

// in row: [cols] or, for SwiGLU, [gate(cols) | up(cols)]; out row: [cols].
void forward_row(const Spans &spans, int32_t act, int32_t cols, const float *in, float *out) {
    spans.forward(act, cols, in, in + cols, out);
}

void forward_row(const Spans &spans, int32_t act, int32_t cols, const uint16_t *in, uint16_t *out) {
    const bool glu = act == PMOE_ACT_SWIGLU;
    float x[kChunk], up[kChunk], y[kChunk];
    for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
        const int64_t n = std::min<int64_t>(kChunk, cols - c0);
        widen(n, in + c0, x);
        if (glu) widen(n, in + cols + c0, up);
        spans.forward(act, n, x, up, y);
        narrow(n, y, out + c0);
    }
}

void backward_row(const Spans &spans, int32_t act, int32_t cols, const float *in, const float *grad_out,
                  float *grad_in) {
    spans.backward(act, cols, in, in + cols, grad_out, grad_in, grad_in + cols);
}

void backward_row(const Spans &spans, int32_t act, int32_t cols, const uint16_t *in, const uint16_t *grad_out,
                  uint16_t *grad_in) {
    const bool glu = act == PMOE_ACT_SWIGLU;
    float x[kChunk], up[kChunk], g[kChunk], gx[kChunk], gup[kChunk];
    for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
        const int64_t n = std::min<int64_t>(kChunk, cols - c0);
        widen(n, in + c0, x);
        if (glu) widen(n, in + cols + c0, up);
        widen(n, grad_out + c0, g);
        spans.backward(act, n, x, up, g, gx, gup);
        narrow(n, gx, grad_in + c0);
        if (glu) narrow(n, gup, grad_in + cols + c0);
    }
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                       void *out, void *) {
    return guarded("pmoe_activation_forward", [&] {
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
        const Spans &s = spans_in_use();
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *src = static_cast<const T *>(in);
            T *dst = static_cast<T *>(out);
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++)
                forward_row(s, act, cols, src + r * in_cols, dst + int64_t(r) * cols);
            return PMOE_OK;
        });
    });
}

int activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                        const void *grad_out, void *grad_in, void *) {
    return guarded("pmoe_activation_backward", [&] {
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
        const Spans &s = spans_in_use();
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *x = static_cast<const T *>(in), *g = static_cast<const T *>(grad_out);
            T *gx = static_cast<T *>(grad_in);
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++)
                backward_row(s, act, cols, x + r * in_cols, g + int64_t(r) * cols, gx + r * in_cols);
            return PMOE_OK;
        });
    });
}

} // namespace pmoe_impl
