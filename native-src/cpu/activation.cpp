// Activations: GeLU (tanh approximation), SiLU and SwiGLU, forward and backward, with f32 or
// bf16 storage and f32 math.
// All go through sigmoid_approx (common.hpp), which vectorises, so the loops over a row run
// 8 lanes wide. Parallel over rows; every element is computed the same way whatever thread
// runs it.
#include "checks.hpp"

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

// in row: [cols] or, for SwiGLU, [gate(cols) | up(cols)]; out row: [cols].
template <typename T> void forward_row(int32_t act, int32_t cols, const T *in, T *out) {
    switch (act) {
    case PMOE_ACT_GELU:
        for (int32_t c = 0; c < cols; c++) out[c] = store<T>(gelu(load(in[c])));
        break;
    case PMOE_ACT_SILU:
        for (int32_t c = 0; c < cols; c++) out[c] = store<T>(silu(load(in[c])));
        break;
    default: // PMOE_ACT_SWIGLU
        for (int32_t c = 0; c < cols; c++)
            out[c] = store<T>(silu(load(in[c])) * load(in[cols + c]));
        break;
    }
}

template <typename T>
void backward_row(int32_t act, int32_t cols, const T *in, const T *grad_out, T *grad_in) {
    switch (act) {
    case PMOE_ACT_GELU:
        for (int32_t c = 0; c < cols; c++)
            grad_in[c] = store<T>(load(grad_out[c]) * gelu_grad(load(in[c])));
        break;
    case PMOE_ACT_SILU:
        for (int32_t c = 0; c < cols; c++)
            grad_in[c] = store<T>(load(grad_out[c]) * silu_grad(load(in[c])));
        break;
    default: // PMOE_ACT_SWIGLU: out = silu(gate) * up
        for (int32_t c = 0; c < cols; c++) {
            const float gate = load(in[c]), up = load(in[cols + c]), g = load(grad_out[c]);
            grad_in[c] = store<T>(g * up * silu_grad(gate));
            grad_in[cols + c] = store<T>(g * silu(gate));
        }
        break;
    }
}

} // namespace
} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                                     const void *in, void *out, void *stream) {
    return guarded("pmoe_activation_forward", [&] {
        PMOE_CHECK(check_activation_forward(dtype, act, rows, cols, in, out));
        if (rows == 0) return PMOE_OK;
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

PMOE_API int pmoe_activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols,
                                      const void *in, const void *grad_out, void *grad_in,
                                      void *stream) {
    return guarded("pmoe_activation_backward", [&] {
        PMOE_CHECK(check_activation_backward(dtype, act, rows, cols, in, grad_out, grad_in));
        if (rows == 0) return PMOE_OK;
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

} // extern "C"
