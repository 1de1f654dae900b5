// Elementwise kernels of the dense layers: bias over rows and its gradient (a column sum in row
// order), residual add, gradient accumulation and scaling. Each output element is computed by one
// thread, so the thread count cannot change a result.
#include "dense.hpp"

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_bias_add(int32_t rows, int32_t cols, const float *bias, float *x,
                           void *stream) {
    return guarded("pmoe_bias_add", [&] {
        PMOE_CHECK(require_non_negative("rows", rows));
        PMOE_CHECK(require_positive("cols", cols));
        if (rows == 0) return PMOE_OK;
        PMOE_CHECK(require_non_null("bias", bias));
        PMOE_CHECK(require_non_null("x", x));
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
        PMOE_CHECK(require_non_negative("rows", rows));
        PMOE_CHECK(require_positive("cols", cols));
        if (rows == 0) return PMOE_OK;
        PMOE_CHECK(require_non_null("dout", dout));
        PMOE_CHECK(require_non_null("dbias", dbias));
        add_bias_gradient(rows, cols, dout, dbias);
        return PMOE_OK;
    });
}

PMOE_API int pmoe_add(int64_t n, const float *a, const float *b, float *out, void *stream) {
    return guarded("pmoe_add", [&] {
        PMOE_CHECK(require_non_negative("n", n));
        if (n == 0) return PMOE_OK;
        PMOE_CHECK(require_non_null("a", a));
        PMOE_CHECK(require_non_null("b", b));
        PMOE_CHECK(require_non_null("out", out));
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
        return PMOE_OK;
    });
}

PMOE_API int pmoe_accumulate(int64_t n, const float *x, float *y, void *stream) {
    return guarded("pmoe_accumulate", [&] {
        PMOE_CHECK(require_non_negative("n", n));
        if (n == 0) return PMOE_OK;
        PMOE_CHECK(require_non_null("x", x));
        PMOE_CHECK(require_non_null("y", y));
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
        return PMOE_OK;
    });
}

PMOE_API int pmoe_scale(int64_t n, float alpha, float *x, void *stream) {
    return guarded("pmoe_scale", [&] {
        PMOE_CHECK(require_non_negative("n", n));
        PMOE_CHECK(require_float_in("alpha", alpha, -INFINITY, INFINITY));
        if (n == 0) return PMOE_OK;
        PMOE_CHECK(require_non_null("x", x));
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] *= alpha;
        return PMOE_OK;
    });
}

} // extern "C"
