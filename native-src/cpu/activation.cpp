// Activations: GeLU (tanh approximation), SiLU and SwiGLU, forward and backward, with f32 or
// bf16 storage and f32 math.
// All go through sigmoid_approx (common.hpp), which vectorises, so the loops over a row run
// 8 lanes wide. Parallel over rows; every element is computed the same way whatever thread
// runs it.
#include <algorithm>

#include "common.hpp"

namespace pmoe {
namespace {

// GeLU(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), written as x * sigmoid(2u)
// (the same function), which has no cancellation for negative x.
constexpr float kGeluScale = 2.0f * 0.7978845608028654f; // 2 sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

inline float gelu(float x) { return x * sigmoid_approx(kGeluScale * (x + kGeluCubic * x * x * x)); }

inline float gelu_grad(float x) {
    const float s = sigmoid_approx(kGeluScale * (x + kGeluCubic * x * x * x));
    return s + x * s * (1.0f - s) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
}

inline float silu(float x) { return x * sigmoid_approx(x); }

inline float silu_grad(float x) {
    const float s = sigmoid_approx(x);
    return s * (1.0f + x * (1.0f - s));
}

// Math on f32 spans: x[n] (the gate for SwiGLU, whose up half is up[n]) -> out[n]. The spans
// never overlap; without __restrict the SwiGLU backward's alias checks cost it ~25%.
void forward_span(int32_t act, int64_t n, const float *__restrict x, const float *__restrict up,
                  float *__restrict out) {
    switch (act) {
    case PMOE_ACT_GELU:
        for (int64_t c = 0; c < n; c++) out[c] = gelu(x[c]);
        break;
    case PMOE_ACT_SILU:
        for (int64_t c = 0; c < n; c++) out[c] = silu(x[c]);
        break;
    default: // PMOE_ACT_SWIGLU
        for (int64_t c = 0; c < n; c++) out[c] = silu(x[c]) * up[c];
        break;
    }
}

// Gradients into gx[n] (and, for SwiGLU, gup[n] for the up half).
void backward_span(int32_t act, int64_t n, const float *__restrict x, const float *__restrict up,
                   const float *__restrict g, float *__restrict gx, float *__restrict gup) {
    switch (act) {
    case PMOE_ACT_GELU:
        for (int64_t c = 0; c < n; c++) gx[c] = g[c] * gelu_grad(x[c]);
        break;
    case PMOE_ACT_SILU:
        for (int64_t c = 0; c < n; c++) gx[c] = g[c] * silu_grad(x[c]);
        break;
    default: // PMOE_ACT_SWIGLU: out = silu(gate) * up
        for (int64_t c = 0; c < n; c++) {
            gx[c] = g[c] * up[c] * silu_grad(x[c]);
            gup[c] = g[c] * silu(x[c]);
        }
        break;
    }
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
void forward_row(int32_t act, int32_t cols, const float *in, float *out) {
    forward_span(act, cols, in, in + cols, out);
}

void forward_row(int32_t act, int32_t cols, const uint16_t *in, uint16_t *out) {
    const bool glu = act == PMOE_ACT_SWIGLU;
    float x[kChunk], up[kChunk], y[kChunk];
    for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
        const int64_t n = std::min<int64_t>(kChunk, cols - c0);
        widen(n, in + c0, x);
        if (glu) widen(n, in + cols + c0, up);
        forward_span(act, n, x, up, y);
        narrow(n, y, out + c0);
    }
}

void backward_row(int32_t act, int32_t cols, const float *in, const float *grad_out,
                  float *grad_in) {
    backward_span(act, cols, in, in + cols, grad_out, grad_in, grad_in + cols);
}

void backward_row(int32_t act, int32_t cols, const uint16_t *in, const uint16_t *grad_out,
                  uint16_t *grad_in) {
    const bool glu = act == PMOE_ACT_SWIGLU;
    float x[kChunk], up[kChunk], g[kChunk], gx[kChunk], gup[kChunk];
    for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
        const int64_t n = std::min<int64_t>(kChunk, cols - c0);
        widen(n, in + c0, x);
        if (glu) widen(n, in + cols + c0, up);
        widen(n, grad_out + c0, g);
        backward_span(act, n, x, up, g, gx, gup);
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
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *src = static_cast<const T *>(in);
            T *dst = static_cast<T *>(out);
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++)
                forward_row(act, cols, src + r * in_cols, dst + int64_t(r) * cols);
            return PMOE_OK;
        });
    });
}

int activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                        const void *grad_out, void *grad_in, void *) {
    return guarded("pmoe_activation_backward", [&] {
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *x = static_cast<const T *>(in), *g = static_cast<const T *>(grad_out);
            T *gx = static_cast<T *>(grad_in);
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
            for (int32_t r = 0; r < rows; r++)
                backward_row(act, cols, x + r * in_cols, g + int64_t(r) * cols, gx + r * in_cols);
            return PMOE_OK;
        });
    });
}

} // namespace pmoe_impl
