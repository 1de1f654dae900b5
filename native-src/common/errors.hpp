// Error reporting shared by every implementation of panamoe.h (errors.cpp): the thread's
// message for pmoe_last_error(), the scalar argument checks and the exception guard.
#pragma once

#include <cstdint>
#include <exception>

#include "panamoe.h"

namespace pmoe {

// Records a message for pmoe_last_error() on this thread and returns `status`.
int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void clear_error();

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

} // namespace pmoe
