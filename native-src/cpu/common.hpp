// Shared plumbing of the CPU kernels: error reporting, argument checks, thread count, bf16.
#pragma once

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <string>

#include "panamoe.h"

namespace pmoe {

// Records a message for pmoe_last_error() on this thread and returns `status`.
int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void clear_error();

// Team size for OpenMP regions (set by pmoe_set_num_threads; default: omp_get_max_threads()).
int num_threads();
// Team size for a region touching about `work` elements (or FLOPs): 1 below a fixed threshold,
// where waking a team costs more than the loop itself, else num_threads(). The kernels give
// bitwise-identical results for any team size, so this changes speed only.
int threads_for(int64_t work);
// The PMOE_ISA_* level the kernels use (cpu_isa.cpp).
int cpu_isa_level();

// Argument checks: each returns a non-zero status (with the message set) on failure, so
// kernels read `PMOE_CHECK(require_positive("tokens", tokens));`.
int require_non_null(const char *name, const void *p);
int require_positive(const char *name, int64_t v);     // v >= 1
int require_non_negative(const char *name, int64_t v); // v >= 0
int require_dtype(const char *name, int32_t dtype);    // F32 or BF16
// A pointer must be non-NULL when it covers any element (elements > 0).
int require_data(const char *name, const void *p, int64_t elements);
// lo <= v < hi for a float argument; NaN fails: "beta1 = 1 is out of range [0, 1)".
int require_float_in(const char *name, float v, double lo, double hi);
// A finite v > 0 (epsilons): "eps = 0 must be finite and > 0".
int require_positive_float(const char *name, float v);

#define PMOE_CHECK(expr)                                                                      \
    do {                                                                                      \
        int pmoe_status_ = (expr);                                                            \
        if (pmoe_status_ != PMOE_OK) return pmoe_status_;                                     \
    } while (0)

// v[i] in [lo, hi) for every i < n; names the first offender:
// "topk_ids[17] = 9 is out of range [0, 8)".
inline int require_ids_in_range(const char *name, const int32_t *v, int64_t n, int64_t lo,
                                int64_t hi) {
    for (int64_t i = 0; i < n; i++)
        if (v[i] < lo || v[i] >= hi)
            return fail(PMOE_ERR_INVALID_ARGUMENT, "%s[%lld] = %d is out of range [%lld, %lld)",
                        name, (long long)i, v[i], (long long)lo, (long long)hi);
    return PMOE_OK;
}

// Every element of the matrix x [rows, cols] is finite; else PMOE_ERR_NON_FINITE naming the
// first offender in row-major order: "logits[3, 5] = nan is not finite (token 3, expert 5)".
// Scans blocks with a branch-free test (vectorises) and searches only a block that fails.
inline int require_finite(const char *name, const float *x, int64_t rows, int64_t cols,
                          const char *row_name, const char *col_name) {
    const int64_t n = rows * cols, block = 1024;
    for (int64_t b = 0; b < n; b += block) {
        const int64_t end = b + block < n ? b + block : n;
        int bad = 0;
        for (int64_t i = b; i < end; i++) bad |= !(std::fabs(x[i]) <= 3.40282347e38f);
        if (!bad) continue;
        for (int64_t i = b;; i++)
            if (!std::isfinite(x[i]))
                return fail(PMOE_ERR_NON_FINITE,
                            "%s[%lld, %lld] = %g is not finite (%s %lld, %s %lld)", name,
                            (long long)(i / cols), (long long)(i % cols), (double)x[i], row_name,
                            (long long)(i / cols), col_name, (long long)(i % cols));
    }
    return PMOE_OK;
}

// tokens >= 1 and 1 <= top_k <= experts, with tokens * top_k slots indexable by int32.
inline int require_routing_shape(int32_t tokens, const char *experts_name, int32_t experts,
                                 int32_t top_k) {
    PMOE_CHECK(require_positive("tokens", tokens));
    PMOE_CHECK(require_positive(experts_name, experts));
    if (top_k < 1 || top_k > experts)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "top_k = %d is out of range [1, %s = %d]", top_k,
                    experts_name, experts);
    if (int64_t(tokens) * top_k > INT32_MAX)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "tokens * top_k = %d * %d exceeds INT32_MAX slots",
                    tokens, top_k);
    return PMOE_OK;
}

// Runs a kernel body, turning a C++ exception (e.g. std::bad_alloc) into a status, so nothing
// escapes across the C ABI.
template <typename F> int guarded(const char *kernel, F &&body) {
    try {
        clear_error();
        return body();
    } catch (const std::exception &e) {
        return fail(PMOE_ERR_RUNTIME, "%s: %s", kernel, e.what());
    } catch (...) {
        return fail(PMOE_ERR_RUNTIME, "%s: unknown C++ exception", kernel);
    }
}

// exp(x) for loops that must vectorise (std::exp stays a libm call without -ffast-math), by
// Cephes' expf scheme: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-5 polynomial
// (relative error ~1e-7), times 2^n built in the exponent bits as 2^(n/2) * 2^(n - n/2), so
// that exp overflows to inf and underflows to 0 as it should (sigmoid saturates to 0 and 1).
// x is first clamped to [-175, 177] (where exp is already 0 and inf), which keeps n small for
// the bit tricks, by masks on its bits: as signed ints, positive floats above 177 (+inf, +NaN
// too); as unsigned, negative floats below -175. Compares and ternaries here (float or int)
// become branches, GCC's jump threading constant-folds each side, and the loop no longer
// vectorises; masks stay straight-line code. A NaN becomes a number here: callers that must
// propagate NaN multiply by their input (the activations) or reject it first (the router).
inline float exp_approx(float x) {
    uint32_t x_bits;
    std::memcpy(&x_bits, &x, sizeof x_bits);
    const uint32_t max_bits = 0x43310000u, min_bits = 0xC32F0000u; // 177.0f, -175.0f
    const uint32_t above = 0u - uint32_t(int32_t(x_bits) > int32_t(max_bits));
    x_bits = (max_bits & above) | (x_bits & ~above);
    const uint32_t below = 0u - uint32_t(x_bits > min_bits);
    x_bits = (min_bits & below) | (x_bits & ~below);
    std::memcpy(&x, &x_bits, sizeof x);
    // Adding 1.5 * 2^23 rounds x / ln2 to the integer n, which lands in the low mantissa bits.
    const float magic = 12582912.0f;
    const float shifted = x * 1.44269504088896341f + magic;
    int32_t n_int;
    std::memcpy(&n_int, &shifted, sizeof n_int);
    n_int -= 0x4B400000;
    const float n = shifted - magic;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f; // ln2 split in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    // n in [-252, 255]: each half's biased exponent stays in [0, 255] (0 gives 0, 255 gives inf).
    const int32_t half = n_int >> 1;
    const uint32_t bits_lo = uint32_t(half + 127) << 23;
    const uint32_t bits_hi = uint32_t(n_int - half + 127) << 23;
    float scale_lo, scale_hi;
    std::memcpy(&scale_lo, &bits_lo, sizeof scale_lo);
    std::memcpy(&scale_hi, &bits_hi, sizeof scale_hi);
    return p * scale_lo * scale_hi;
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// bf16 <-> f32 with round-to-nearest-even (NaN stays NaN).
inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
// Branch-free (NaN selected with a mask) so that loops storing bf16 rows vectorise.
inline uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    // A signed compare (the masked bits are below 2^31): AVX2 has no unsigned one.
    const uint32_t nan = 0u - uint32_t(int32_t(bits & 0x7fffffffu) > int32_t(0x7f800000));
    return uint16_t((((bits >> 16) | 0x40u) & nan) | (rounded & ~nan));
}

// Element access for kernels templated on the storage type (float, or bf16 bits as uint16_t):
// math runs in f32, and a bf16 store rounds once.
inline float load(float v) { return v; }
inline float load(uint16_t v) { return bf16_to_f32(v); }
template <typename T> T store(float v);
template <> inline float store<float>(float v) { return v; }
template <> inline uint16_t store<uint16_t>(float v) { return f32_to_bf16(v); }

// body(T()) with T the storage type of a checked PMOE_DTYPE_* (float or uint16_t).
template <typename F> int with_dtype(int32_t dtype, F &&body) {
    return dtype == PMOE_DTYPE_F32 ? body(float()) : body(uint16_t());
}

} // namespace pmoe
