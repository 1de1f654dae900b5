// Library-level entry points of the CUDA implementation of panamoe.h.
// The kernels themselves arrive with the CUDA-backend issue; until then this library exports
// the library functions only, and the Java side reports the missing kernels as unsupported.
#include <cstdarg>
#include <cstdio>
#include <string>

#include "panamoe.h"

namespace {
thread_local std::string last_error;
}

extern "C" {

PMOE_API const char *pmoe_last_error(void) { return last_error.c_str(); }

PMOE_API int pmoe_version(int32_t *major, int32_t *minor, int32_t *patch) {
    if (!major || !minor || !patch) {
        last_error = "major, minor and patch must not be NULL";
        return PMOE_ERR_INVALID_ARGUMENT;
    }
    *major = 0;
    *minor = 1;
    *patch = 0;
    return PMOE_OK;
}

PMOE_API const char *pmoe_backend_name(void) { return "cuda"; }

PMOE_API int pmoe_noop(void) { return PMOE_OK; }

} // extern "C"
