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

// Argument checks: each returns a non-zero status (with the message set) on failure, so
// kernels read `PMOE_CHECK(require_positive("tokens", tokens));`.
int require_non_null(const char *name, const void *p);
int require_positive(const char *name, int64_t v);     // v >= 1
int require_non_negative(const char *name, int64_t v); // v >= 0
int require_dtype(const char *name, int32_t dtype);    // F32 or BF16

#define PMOE_CHECK(expr)                                                                      \
    do {                                                                                      \
        int pmoe_status_ = (expr);                                                            \
        if (pmoe_status_ != PMOE_OK) return pmoe_status_;                                     \
    } while (0)

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

// bf16 <-> f32 with round-to-nearest-even (NaN stays NaN).
inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
inline uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u); // quiet NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

} // namespace pmoe
