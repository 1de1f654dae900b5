// Row normalisation: LayerNorm (centred, with bias) and RMSNorm (not centred, no bias). One
// implementation serves both: RMSNorm is LayerNorm with the mean fixed at 0 and no bias.
// Row statistics are lane sums in double; weight/bias gradients are column sums in row order,
// into f32 whatever the storage of x, weight and out (f32 or bf16). The per-row math
// (norm_rows.inc) runs 8 lanes wide here and 16 in norm_avx512.cpp, by the level in use (the
// same bits either way).
//
// The row math reads f32. bf16 inputs are widened (exactly) into each thread's scratch first:
// weight and bias once per thread and call, x and dout once per row. The row math reads each
// element two or three times, with a conversion each time before: bf16 layernorm at 2048 x 256
// took 1.35x (AVX-512) and 1.45-1.75x (AVX2) the f32 one's time, and widened 1.0x and
// 1.2-1.3x (jmh/README.md, eighth session).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common.hpp"
#include "dense.hpp"
#include "norm.hpp"

namespace pmoe {
namespace avx2_norm {
#include "norm_rows.inc"
} // namespace avx2_norm

namespace {

// The row functions of the level in use, for storage T.
template <typename T> struct NormRows {
    decltype(&avx2_norm::norm_forward_row<T>) forward;
    decltype(&avx2_norm::norm_backward_row<T>) backward;
    decltype(&avx2_norm::norm_gradient_block<T>) gradients;
};

template <typename T> const NormRows<T> &norm_rows_in_use() {
    static const NormRows<T> avx2{&avx2_norm::norm_forward_row<T>, &avx2_norm::norm_backward_row<T>,
                                  &avx2_norm::norm_gradient_block<T>};
    static const NormRows<T> avx512{&avx512_norm::norm_forward_row<T>, &avx512_norm::norm_backward_row<T>,
                                    &avx512_norm::norm_gradient_block<T>};
    return *at_level_in_use(&avx2, &avx512);
}

thread_local ThreadBuffer widened;

// x[0, n) as f32: x itself, or x widened into slot `slot` (n floats each) of the scratch.
const float *as_f32(const float *x, int64_t, float *, int) { return x; }
const float *as_f32(const uint16_t *x, int64_t n, float *scratch, int slot) {
    float *to = scratch + slot * n;
    for (int64_t i = 0; i < n; i++) to[i] = bf16_to_f32(x[i]);
    return to;
}

// loop(ready, scratch) on the team for rows x cols (on_team_with_scratch), with three slots of
// `cols` floats of scratch a thread for bf16 storage (weight, then bias or x, then x or dout).
template <typename T, typename RowLoop> bool on_team(int64_t rows, int64_t cols, RowLoop loop) {
    const size_t bytes = std::is_same_v<T, float> ? 0 : 3 * cols * sizeof(float);
    return on_team_with_scratch(rows * cols, []() -> ThreadBuffer & { return widened; }, bytes, loop);
}

// mean (centred only) and rstd of each row, then out = xhat * weight (+ bias).
template <typename T>
bool norm_forward(bool centred, int64_t rows, int64_t cols, float eps, const T *x,
                  const T *weight, const T *bias, T *out, float *mean, float *rstd) {
    const auto forward_row = norm_rows_in_use<T>().forward;
    return on_team<T>(rows, cols, [&](bool ready, float *scratch) {
        const float *w = ready ? as_f32(weight, cols, scratch, 0) : nullptr;
        const float *b = ready && bias ? as_f32(bias, cols, scratch, 1) : nullptr;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            if (ready)
                forward_row(centred, cols, eps, as_f32(x + r * cols, cols, scratch, 2), w, b,
                            out + r * cols, centred ? mean + r : nullptr, rstd + r);
    });
}

// dx (norm_backward_row), dweight += sum_r dout * xhat and, with dbias (LayerNorm), dbias +=
// sum_r dout (f32; norm_gradient_block), the mean's gradient only when centred.
template <typename T>
bool norm_backward(bool centred, int64_t rows, int64_t cols, const T *x, const T *weight,
                   const float *mean, const float *rstd, const T *dout, T *dx, float *dweight,
                   float *dbias) {
    const NormRows<T> &f = norm_rows_in_use<T>();
    const bool ok = on_team<T>(rows, cols, [&](bool ready, float *scratch) {
        const float *w = ready ? as_f32(weight, cols, scratch, 0) : nullptr;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            if (ready)
                f.backward(centred, cols, as_f32(x + r * cols, cols, scratch, 1), w,
                           centred ? mean[r] : 0.0f, rstd[r],
                           as_f32(dout + r * cols, cols, scratch, 2), dx + r * cols);
    });
    if (!ok) return false;
    for_each_column_block(rows, cols, [&](int64_t c0, int64_t width) {
        f.gradients(centred, rows, cols, c0, width, x, mean, rstd, dout, dweight, dbias);
    });
    return true;
}

// A kernel's status: failed when a thread could not grow its scratch.
int scratch_status(const char *kernel, bool ok) {
    return ok ? PMOE_OK : fail(PMOE_ERR_RUNTIME, "%s: out of memory for its scratch", kernel);
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
            const bool ok = norm_forward(true, rows, cols, eps, static_cast<const T *>(x),
                                         static_cast<const T *>(weight), static_cast<const T *>(bias),
                                         static_cast<T *>(out), mean, rstd);
            return scratch_status("pmoe_layernorm_forward", ok);
        });
    });
}

int layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                       const float *mean, const float *rstd, const void *dout, void *dx,
                       float *dweight, float *dbias, void *) {
    return guarded("pmoe_layernorm_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const bool ok = norm_backward(true, rows, cols, static_cast<const T *>(x),
                                          static_cast<const T *>(weight), mean, rstd,
                                          static_cast<const T *>(dout), static_cast<T *>(dx), dweight, dbias);
            return scratch_status("pmoe_layernorm_backward", ok);
        });
    });
}

int rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x,
                    const void *weight, void *out, float *rstd, void *) {
    return guarded("pmoe_rmsnorm_forward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const bool ok = norm_forward<T>(false, rows, cols, eps, static_cast<const T *>(x),
                                            static_cast<const T *>(weight), nullptr, static_cast<T *>(out),
                                            nullptr, rstd);
            return scratch_status("pmoe_rmsnorm_forward", ok);
        });
    });
}

int rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight,
                     const float *rstd, const void *dout, void *dx, float *dweight, void *) {
    return guarded("pmoe_rmsnorm_backward", [&] {
        return with_dtype(dtype, [&](auto t) {
            using T = decltype(t);
            const bool ok = norm_backward(false, rows, cols, static_cast<const T *>(x),
                                          static_cast<const T *>(weight), nullptr, rstd,
                                          static_cast<const T *>(dout), static_cast<T *>(dx), dweight, nullptr);
            return scratch_status("pmoe_rmsnorm_backward", ok);
        });
    });
}

} // namespace pmoe_impl
