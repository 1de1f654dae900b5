// Activations (f32): GeLU (tanh approximation), SiLU and SwiGLU, forward and backward, one
// thread per output element. Same formulas as cpu/activation.cpp (GeLU as x * sigmoid(2u)).
#include "common.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr float kGeluScale = 2.0f * 0.7978845608028654f; // 2 sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float gelu_gate(float x) {
    return sigmoid(kGeluScale * (x + kGeluCubic * x * x * x));
}

// in [rows, in_cols] -> out [rows, cols]; SwiGLU rows are [gate(cols) | up(cols)].
__global__ void activation_forward_kernel(int act, int64_t rows, int64_t cols, const float *in,
                                          float *out) {
    const int64_t n = rows * cols, stride = int64_t(gridDim.x) * blockDim.x;
    const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * cols : cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int64_t r = i / cols, c = i % cols;
        const float x = in[r * in_cols + c];
        switch (act) {
        case PMOE_ACT_GELU: out[i] = x * gelu_gate(x); break;
        case PMOE_ACT_SILU: out[i] = x * sigmoid(x); break;
        default: out[i] = x * sigmoid(x) * in[r * in_cols + cols + c]; break;
        }
    }
}

__global__ void activation_backward_kernel(int act, int64_t rows, int64_t cols, const float *in,
                                           const float *grad_out, float *grad_in) {
    const int64_t n = rows * cols, stride = int64_t(gridDim.x) * blockDim.x;
    const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * cols : cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int64_t r = i / cols, c = i % cols, at = r * in_cols + c;
        const float x = in[at], g = grad_out[i];
        switch (act) {
        case PMOE_ACT_GELU: {
            const float s = gelu_gate(x);
            grad_in[at] = g * (s + x * s * (1.0f - s) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x));
            break;
        }
        case PMOE_ACT_SILU: {
            const float s = sigmoid(x);
            grad_in[at] = g * s * (1.0f + x * (1.0f - s));
            break;
        }
        default: { // out = silu(gate) * up
            const float s = sigmoid(x), up = in[at + cols];
            grad_in[at] = g * up * s * (1.0f + x * (1.0f - s));
            grad_in[at + cols] = g * x * s;
            break;
        }
        }
    }
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe;
using namespace pmoe::cuda;

extern "C" {

PMOE_API int pmoe_activation_forward(int32_t act, int32_t rows, int32_t cols, const float *in,
                                     float *out, void *stream) {
    return guarded("pmoe_activation_forward", [&] {
        PMOE_CHECK(check_activation_forward(act, rows, cols, in, out));
        if (rows == 0) return PMOE_OK;
        const int64_t n = int64_t(rows) * cols;
        return launch("activation_forward", activation_forward_kernel, grid_for(n, 256), 256, 0,
                      stream, act, int64_t(rows), int64_t(cols), in, out);
    });
}

PMOE_API int pmoe_activation_backward(int32_t act, int32_t rows, int32_t cols, const float *in,
                                      const float *grad_out, float *grad_in, void *stream) {
    return guarded("pmoe_activation_backward", [&] {
        PMOE_CHECK(check_activation_backward(act, rows, cols, in, grad_out, grad_in));
        if (rows == 0) return PMOE_OK;
        const int64_t n = int64_t(rows) * cols;
        return launch("activation_backward", activation_backward_kernel, grid_for(n, 256), 256, 0,
                      stream, act, int64_t(rows), int64_t(cols), in, grad_out, grad_in);
    });
}

} // extern "C"
