// Elementwise kernels of the dense layers: bias over rows and its gradient (a column sum in row
// order), residual add, gradient accumulation and scaling. Each output element is computed by one
// thread, so the thread count cannot change a result.
#include "checks.hpp"
#include "dense.hpp"

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_bias_add(int32_t rows, int32_t cols, const float *bias, float *x,
                           void *stream) {
    return guarded("pmoe_bias_add", [&] {
        PMOE_CHECK(check_bias_add(rows, cols, bias, x));
        if (rows == 0) return PMOE_OK;
#pragma omp parallel for num_threads(threads_for(int64_t(rows) * cols)) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *row = x + r * cols;
            for (int64_t c = 0; c < cols; c++) row[c] += bias[c];
        }
        return PMOE_OK;
    });
}

PMOE_API int pmoe_bias_backward(int32_t rows, int32_t cols, const float *dout, float *dbias,
                                void *stream) {
    return guarded("pmoe_bias_backward", [&] {
        PMOE_CHECK(check_bias_backward(rows, cols, dout, dbias));
        if (rows == 0) return PMOE_OK;
        add_bias_gradient(rows, cols, dout, dbias);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_add(int64_t n, const float *a, const float *b, float *out, void *stream) {
    return guarded("pmoe_add", [&] {
        PMOE_CHECK(check_add(n, a, b, out));
        if (n == 0) return PMOE_OK;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
        return PMOE_OK;
    });
}

PMOE_API int pmoe_accumulate(int64_t n, const float *x, float *y, void *stream) {
    return guarded("pmoe_accumulate", [&] {
        PMOE_CHECK(check_accumulate(n, x, y));
        if (n == 0) return PMOE_OK;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
        return PMOE_OK;
    });
}

PMOE_API int pmoe_scale(int64_t n, float alpha, float *x, void *stream) {
    return guarded("pmoe_scale", [&] {
        PMOE_CHECK(check_scale(n, alpha, x));
        if (n == 0) return PMOE_OK;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] *= alpha;
        return PMOE_OK;
    });
}

} // extern "C"
