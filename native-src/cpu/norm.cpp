// Row normalisation: LayerNorm (centred, with bias) and RMSNorm (not centred, no bias). One
// implementation serves both: RMSNorm is LayerNorm with the mean fixed at 0 and no bias.
// Row statistics are lane sums in double; weight/bias gradients are column sums in row order.
#include "checks.hpp"
#include "dense.hpp"

namespace pmoe {
namespace {

// mean (centred only) and rstd of each row, then out = xhat * weight (+ bias).
void norm_forward(bool centred, int64_t rows, int64_t cols, float eps, const float *x,
                  const float *weight, const float *bias, float *out, float *mean, float *rstd) {
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        const float mu =
            centred ? float(lane_sum<double>(cols, [&](int64_t c) { return xr[c]; }) / cols) : 0.0f;
        const double var = lane_sum<double>(cols, [&](int64_t c) {
                               const float d = xr[c] - mu;
                               return d * d;
                           }) / cols;
        const float s = float(1.0 / std::sqrt(var + eps));
        float *o = out + r * cols;
        for (int64_t c = 0; c < cols; c++) o[c] = (xr[c] - mu) * s * weight[c];
        if (bias)
            for (int64_t c = 0; c < cols; c++) o[c] += bias[c];
        if (centred) mean[r] = mu;
        rstd[r] = s;
    }
}

// With g = dout * weight: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), where the mean(g)
// term (the mean's gradient) exists only when centred. dweight += sum_r dout * xhat.
void norm_backward(bool centred, int64_t rows, int64_t cols, const float *x, const float *weight,
                   const float *mean, const float *rstd, const float *dout, float *dx,
                   float *dweight) {
    auto xhat = [&](int64_t r, int64_t c) {
        return (x[r * cols + c] - (centred ? mean[r] : 0.0f)) * rstd[r];
    };
#pragma omp parallel for num_threads(threads_for(rows * cols)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *d = dout + r * cols;
        auto g = [&](int64_t c) { return d[c] * weight[c]; };
        const float mean_g = centred ? float(lane_sum<double>(cols, g) / cols) : 0.0f;
        const float mean_gx =
            float(lane_sum<double>(cols, [&](int64_t c) { return g(c) * xhat(r, c); }) / cols);
        float *dxr = dx + r * cols;
        for (int64_t c = 0; c < cols; c++)
            dxr[c] = rstd[r] * (g(c) - mean_g - xhat(r, c) * mean_gx);
    }
    add_column_sums(
        rows, cols, [&](int64_t r, int64_t c) { return dout[r * cols + c] * xhat(r, c); }, dweight);
}

} // namespace
} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_layernorm_forward(int32_t rows, int32_t cols, float eps, const float *x,
                                    const float *weight, const float *bias, float *out,
                                    float *mean, float *rstd, void *stream) {
    return guarded("pmoe_layernorm_forward", [&] {
        PMOE_CHECK(check_layernorm_forward(rows, cols, eps, x, weight, bias, out, mean, rstd));
        if (rows == 0) return PMOE_OK;
        norm_forward(true, rows, cols, eps, x, weight, bias, out, mean, rstd);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_layernorm_backward(int32_t rows, int32_t cols, const float *x,
                                     const float *weight, const float *mean, const float *rstd,
                                     const float *dout, float *dx, float *dweight, float *dbias,
                                     void *stream) {
    return guarded("pmoe_layernorm_backward", [&] {
        PMOE_CHECK(check_layernorm_backward(rows, cols, x, weight, mean, rstd, dout, dx, dweight,
                                            dbias));
        if (rows == 0) return PMOE_OK;
        norm_backward(true, rows, cols, x, weight, mean, rstd, dout, dx, dweight);
        add_bias_gradient(rows, cols, dout, dbias);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_rmsnorm_forward(int32_t rows, int32_t cols, float eps, const float *x,
                                  const float *weight, float *out, float *rstd, void *stream) {
    return guarded("pmoe_rmsnorm_forward", [&] {
        PMOE_CHECK(check_rmsnorm_forward(rows, cols, eps, x, weight, out, rstd));
        if (rows == 0) return PMOE_OK;
        norm_forward(false, rows, cols, eps, x, weight, nullptr, out, nullptr, rstd);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_rmsnorm_backward(int32_t rows, int32_t cols, const float *x,
                                   const float *weight, const float *rstd, const float *dout,
                                   float *dx, float *dweight, void *stream) {
    return guarded("pmoe_rmsnorm_backward", [&] {
        PMOE_CHECK(check_rmsnorm_backward(rows, cols, x, weight, rstd, dout, dx, dweight));
        if (rows == 0) return PMOE_OK;
        norm_backward(false, rows, cols, x, weight, nullptr, rstd, dout, dx, dweight);
        return PMOE_OK;
    });
}

} // extern "C"
