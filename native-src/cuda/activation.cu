// Activations with f32 or bf16 storage and f32 math: GeLU (tanh approximation), SiLU and
// SwiGLU, forward and backward, one thread per output element. Same formulas as
// cpu/activation.cpp (GeLU as x * sigmoid(2u)).
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
template <typename T>
__global__ void activation_forward_kernel(int act, int64_t rows, int64_t cols, const T *in,
                                          T *out) {
    const int64_t n = rows * cols, stride = int64_t(gridDim.x) * blockDim.x;
    const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * cols : cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int64_t r = i / cols, c = i % cols;
        const float x = to_float(in[r * in_cols + c]);
        float y;
        switch (act) {
        case PMOE_ACT_GELU: y = x * gelu_gate(x); break;
        case PMOE_ACT_SILU: y = x * sigmoid(x); break;
        default: y = x * sigmoid(x) * to_float(in[r * in_cols + cols + c]); break;
        }
        out[i] = from_float<T>(y);
    }
}

template <typename T>
__global__ void activation_backward_kernel(int act, int64_t rows, int64_t cols, const T *in,
                                           const T *grad_out, T *grad_in) {
    const int64_t n = rows * cols, stride = int64_t(gridDim.x) * blockDim.x;
    const int64_t in_cols = act == PMOE_ACT_SWIGLU ? 2 * cols : cols;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const int64_t r = i / cols, c = i % cols, at = r * in_cols + c;
        const float x = to_float(in[at]), g = to_float(grad_out[i]);
        switch (act) {
        case PMOE_ACT_GELU: {
            const float s = gelu_gate(x);
            grad_in[at] = from_float<T>(
                g * (s + x * s * (1.0f - s) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x)));
            break;
        }
        case PMOE_ACT_SILU: {
            const float s = sigmoid(x);
            grad_in[at] = from_float<T>(g * s * (1.0f + x * (1.0f - s)));
            break;
        }
        default: { // out = silu(gate) * up
            const float s = sigmoid(x), up = to_float(in[at + cols]);
            grad_in[at] = from_float<T>(g * up * s * (1.0f + x * (1.0f - s)));
            grad_in[at + cols] = from_float<T>(g * x * s);
            break;
        }
        }
    }
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                       void *out, void *stream) {
    return guarded("pmoe_activation_forward", [&] {
        const int64_t n = int64_t(rows) * cols;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("activation_forward", activation_forward_kernel<T>, grid_for(n, 256),
                          256, 0, stream, act, int64_t(rows), int64_t(cols),
                          static_cast<const T *>(in), static_cast<T *>(out));
        });
    });
}

int activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in,
                        const void *grad_out, void *grad_in, void *stream) {
    return guarded("pmoe_activation_backward", [&] {
        const int64_t n = int64_t(rows) * cols;
        return with_device_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            return launch("activation_backward", activation_backward_kernel<T>, grid_for(n, 256),
                          256, 0, stream, act, int64_t(rows), int64_t(cols),
                          static_cast<const T *>(in), static_cast<const T *>(grad_out),
                          static_cast<T *>(grad_in));
        });
    });
}

} // namespace pmoe_impl
