// Library-level parts of the CPU implementation: thread count, finiteness scan (the entry points
// are common/api.cpp, errors common/errors.cpp).
#include <omp.h>

#include <algorithm>
#include <cstdlib>

#include "common.hpp"

namespace pmoe {

int num_threads() {
    const int n = requested_threads();
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

extern "C" PMOE_API const char *pmoe_backend_name(void) { return "cpu"; }

int pmoe_impl::find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index,
                              void *) {
    *first_index = -1;
    return with_dtype(dtype, [&](auto t) {
        const auto *v = static_cast<const decltype(t) *>(x);
        // Blocks of a branch-free scan (an early exit per element keeps the loop scalar, and
        // the layers check every input) on the team; only the first block that has one is
        // searched for the first.
        constexpr int64_t block = 1024;
        const int64_t blocks = (n + block - 1) / block;
        int64_t first_block = blocks;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static) reduction(min : first_block)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t b0 = b * block, end = std::min(n, b0 + block);
            int any = 0;
            for (int64_t i = b0; i < end; i++) any |= !std::isfinite(load(v[i]));
            if (any) first_block = std::min(first_block, b);
        }
        for (int64_t i = first_block * block; i < std::min(n, (first_block + 1) * block); i++) {
            if (!std::isfinite(load(v[i]))) {
                *first_index = i;
                break;
            }
        }
        return PMOE_OK;
    });
}
