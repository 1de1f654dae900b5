// Row normalisation: LayerNorm (centred, with bias) and RMSNorm (not centred, no bias). One
// implementation serves both: RMSNorm is LayerNorm with the mean fixed at 0 and no bias.
// Row statistics are lane sums in double; weight/bias gradients are column sums in row order,
// into f32 whatever the storage of x, weight and out (f32 or bf16).
#include "common.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// mean (centred only) and rstd of each row, then out = xhat * weight (+ bias).
template <typename T>
void norm_forward(bool centred, int64_t rows, int64_t cols, float eps, const T *x,
                  const T *weight, const T *bias, T *out, float *mean, float *rstd) {
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const T *xr = x + r * cols;
        const float mu =
            centred ? float(lane_sum<double>(cols, [&](int64_t c) { return load(xr[c]); }) / cols)
                    : 0.0f;
        const double var = lane_sum<double>(cols, [&](int64_t c) {
                               const float d = load(xr[c]) - mu;
                               return d * d;
                           }) / cols;
        const float s = float(1.0 / std::sqrt(var + eps));
        // The bias is added in a pass of its own over an f32 chunk, so the compiler cannot fuse
        // it with the product into an FMA (f32 results stay those of the f32-only kernel) and
        // a bf16 element is rounded once.
        constexpr int64_t kChunk = 256;
        float v[kChunk];
        for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
            const int64_t n = std::min(kChunk, cols - c0);
            for (int64_t i = 0; i < n; i++)
                v[i] = (load(xr[c0 + i]) - mu) * s * load(weight[c0 + i]);
            if (bias)
                for (int64_t i = 0; i < n; i++) v[i] += load(bias[c0 + i]);
            for (int64_t i = 0; i < n; i++) out[r * cols + c0 + i] = store<T>(v[i]);
        }
        if (centred) mean[r] = mu;
        rstd[r] = s;
    }
}

// With g = dout * weight: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), where the mean(g)
// term (the mean's gradient) exists only when centred. dweight += sum_r dout * xhat (f32).
template <typename T>
void norm_backward(bool centred, int64_t rows, int64_t cols, const T *x, const T *weight,
                   const float *mean, const float *rstd, const T *dout, T *dx, float *dweight) {
    auto xhat = [&](int64_t r, int64_t c) {
        return (load(x[r * cols + c]) - (centred ? mean[r] : 0.0f)) * rstd[r];
    };
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const T *d = dout + r * cols;
        auto g = [&](int64_t c) { return load(d[c]) * load(weight[c]); };
        const float mean_g = centred ? float(lane_sum<double>(cols, g) / cols) : 0.0f;
        const float mean_gx =
            float(lane_sum<double>(cols, [&](int64_t c) { return g(c) * xhat(r, c); }) / cols);
        T *dxr = dx + r * cols;
        for (int64_t c = 0; c < cols; c++)
            dxr[c] = store<T>(rstd[r] * (g(c) - mean_g - xhat(r, c) * mean_gx));
    }
    add_column_sums(
        rows, cols,
        [&](int64_t r, int64_t c) { return load(dout[r * cols + c]) * xhat(r, c); }, dweight);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                      const void *weight, const void *bias, void *out, float *mean, float *rstd,
                      void *) {
    return guarded("pmoe_layernorm_forward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_forward(true, rows, cols, eps, static_cast<const T *>(x),
                         static_cast<const T *>(weight), static_cast<const T *>(bias),
                         static_cast<T *>(out), mean, rstd);
            return PMOE_OK;
        });
    });
}

int layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                       const float *mean, const float *rstd, const void *dout, void *dx,
                       float *dweight, float *dbias, void *) {
    return guarded("pmoe_layernorm_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const T *d = static_cast<const T *>(dout);
            norm_backward(true, rows, cols, static_cast<const T *>(x),
                          static_cast<const T *>(weight), mean, rstd, d, static_cast<T *>(dx),
                          dweight);
            add_bias_gradient(rows, cols, d, dbias);
            return PMOE_OK;
        });
    });
}

int rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                    const void *weight, void *out, float *rstd, void *) {
    return guarded("pmoe_rmsnorm_forward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_forward<T>(false, rows, cols, eps, static_cast<const T *>(x),
                            static_cast<const T *>(weight), nullptr, static_cast<T *>(out),
                            nullptr, rstd);
            return PMOE_OK;
        });
    });
}

int rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                     const float *rstd, const void *dout, void *dx, float *dweight, void *) {
    return guarded("pmoe_rmsnorm_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            norm_backward(false, rows, cols, static_cast<const T *>(x),
                          static_cast<const T *>(weight), nullptr, rstd,
                          static_cast<const T *>(dout), static_cast<T *>(dx), dweight);
            return PMOE_OK;
        });
    });
}

} // namespace pmoe_impl
