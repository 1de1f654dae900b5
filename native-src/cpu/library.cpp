// Library-level entry points: version, thread count, no-op, finiteness scan (errors: errors.cpp).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdio>

#include "checks.hpp"

namespace pmoe {

namespace {
std::atomic<int> team_size{0};
} // namespace

int num_threads() {
    int n = team_size.load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
}

// Below this much work (elements or FLOPs) a kernel runs on the calling thread: waking a team
// costs more than it saves, and on a busy machine far more. PMOE_PARALLEL_MIN_WORK overrides
// it; the determinism tests set 0 so that even their small shapes run with the full team.
static int64_t min_parallel_work() {
    static const int64_t value = [] {
        const char *env = std::getenv("PMOE_PARALLEL_MIN_WORK");
        return env && *env ? std::max<int64_t>(0, std::atoll(env)) : int64_t(1) << 15;
    }();
    return value;
}

int threads_for(int64_t work) { return work < min_parallel_work() ? 1 : num_threads(); }

} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_version(int32_t *major, int32_t *minor, int32_t *patch) {
    clear_error();
    PMOE_CHECK(require_non_null("major", major));
    PMOE_CHECK(require_non_null("minor", minor));
    PMOE_CHECK(require_non_null("patch", patch));
    *major = 0;
    *minor = 1;
    *patch = 0;
    return PMOE_OK;
}

PMOE_API const char *pmoe_backend_name(void) { return "cpu"; }

PMOE_API int pmoe_noop(void) { return PMOE_OK; }

PMOE_API int pmoe_set_num_threads(int32_t n) {
    clear_error();
    PMOE_CHECK(require_positive("n", n));
    team_size.store(n, std::memory_order_relaxed);
    return PMOE_OK;
}

PMOE_API int pmoe_get_num_threads(int32_t *n) {
    clear_error();
    PMOE_CHECK(require_non_null("n", n));
    *n = num_threads();
    return PMOE_OK;
}

PMOE_API int pmoe_find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index,
                                 void *stream) {
    clear_error();
    PMOE_CHECK(check_find_nonfinite(dtype, n, x, first_index));
    *first_index = -1;
    return with_dtype(dtype, [&](auto t) {
        const auto *v = static_cast<const decltype(t) *>(x);
        for (int64_t i = 0; i < n; i++) {
            if (!std::isfinite(load(v[i]))) {
                *first_index = i;
                break;
            }
        }
        return PMOE_OK;
    });
}

} // extern "C"
