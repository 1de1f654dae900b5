// Activations (f32): GeLU (tanh approximation), SiLU and SwiGLU, forward and backward.
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
void forward_row(int32_t act, int32_t cols, const float *in, float *out) {
    switch (act) {
    case PMOE_ACT_GELU:
        for (int32_t c = 0; c < cols; c++) out[c] = gelu(in[c]);
        break;
    case PMOE_ACT_SILU:
        for (int32_t c = 0; c < cols; c++) out[c] = silu(in[c]);
        break;
    default: // PMOE_ACT_SWIGLU
        for (int32_t c = 0; c < cols; c++) out[c] = silu(in[c]) * in[cols + c];
        break;
    }
}

void backward_row(int32_t act, int32_t cols, const float *in, const float *grad_out,
                  float *grad_in) {
    switch (act) {
    case PMOE_ACT_GELU:
        for (int32_t c = 0; c < cols; c++) grad_in[c] = grad_out[c] * gelu_grad(in[c]);
        break;
    case PMOE_ACT_SILU:
        for (int32_t c = 0; c < cols; c++) grad_in[c] = grad_out[c] * silu_grad(in[c]);
        break;
    default: // PMOE_ACT_SWIGLU: out = silu(gate) * up
        for (int32_t c = 0; c < cols; c++) {
            const float gate = in[c], up = in[cols + c];
            grad_in[c] = grad_out[c] * up * silu_grad(gate);
            grad_in[cols + c] = grad_out[c] * silu(gate);
        }
        break;
    }
}

} // namespace
} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_activation_forward(int32_t act, int32_t rows, int32_t cols, const float *in,
                                     float *out, void *stream) {
    return guarded("pmoe_activation_forward", [&] {
        PMOE_CHECK(check_activation_forward(act, rows, cols, in, out));
        if (rows == 0) return PMOE_OK;
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
        for (int32_t r = 0; r < rows; r++)
            forward_row(act, cols, in + r * in_cols, out + int64_t(r) * cols);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_activation_backward(int32_t act, int32_t rows, int32_t cols, const float *in,
                                      const float *grad_out, float *grad_in, void *stream) {
    return guarded("pmoe_activation_backward", [&] {
        PMOE_CHECK(check_activation_backward(act, rows, cols, in, grad_out, grad_in));
        if (rows == 0) return PMOE_OK;
        const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * int64_t(cols) : cols;
#pragma omp parallel for num_threads(threads_for(rows * in_cols)) schedule(static)
        for (int32_t r = 0; r < rows; r++)
            backward_row(act, cols, in + r * in_cols, grad_out + int64_t(r) * cols,
                         grad_in + r * in_cols);
        return PMOE_OK;
    });
}

} // extern "C"
