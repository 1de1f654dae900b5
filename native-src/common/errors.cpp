// Error reporting and scalar argument checks shared by every implementation of panamoe.h: the
// CPU library compiles this file, and so do the CUDA library and its host-harness build, so
// the same bad argument gets the same message from each.
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "errors.hpp"

namespace pmoe {

namespace {
// A fixed buffer rather than a std::string: fail() allocates nothing, so the argument checks,
// which run outside guarded(), cannot throw.
thread_local char last_error[1024];
} // namespace

int fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void clear_error() { last_error[0] = '\0'; }

int require_non_null(const char *name, const void *p) {
    return p ? PMOE_OK : fail(PMOE_ERR_INVALID_ARGUMENT, "%s must not be NULL", name);
}
int require_positive(const char *name, int64_t v) {
    return v >= 1 ? PMOE_OK
                  : fail(PMOE_ERR_INVALID_ARGUMENT, "%s must be >= 1, got %lld", name, (long long)v);
}
int require_non_negative(const char *name, int64_t v) {
    return v >= 0 ? PMOE_OK
                  : fail(PMOE_ERR_INVALID_ARGUMENT, "%s must be >= 0, got %lld", name, (long long)v);
}
int require_dtype(const char *name, int32_t dtype) {
    return dtype == PMOE_DTYPE_F32 || dtype == PMOE_DTYPE_BF16
               ? PMOE_OK
               : fail(PMOE_ERR_INVALID_ARGUMENT,
                      "%s must be PMOE_DTYPE_F32 (0) or PMOE_DTYPE_BF16 (1), got %d", name, dtype);
}

int require_data(const char *name, const void *p, int64_t elements) {
    return elements > 0 ? require_non_null(name, p) : PMOE_OK;
}
int require_float_in(const char *name, float v, double lo, double hi) {
    return v >= lo && v < hi ? PMOE_OK
                             : fail(PMOE_ERR_INVALID_ARGUMENT, "%s = %g is out of range [%g, %g)",
                                    name, (double)v, lo, hi);
}
int require_positive_float(const char *name, float v) {
    return v > 0 && std::isfinite(v)
               ? PMOE_OK
               : fail(PMOE_ERR_INVALID_ARGUMENT, "%s = %g must be finite and > 0", name, (double)v);
}

} // namespace pmoe

extern "C" PMOE_API const char *pmoe_last_error(void) { return pmoe::last_error; }
