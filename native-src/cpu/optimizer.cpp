// Optimizer kernels over flat f32 buffers: the AdamW update (optionally writing the f32 or bf16
// working copy of the updated masters) and the sum of squares behind global gradient-norm
// clipping (the scaling itself is pmoe_scale).
#include <algorithm>
#include <vector>

#include "common.hpp"
#include "dense.hpp"

namespace pmoe_impl {

int adamw_step(int64_t n, float *params, const float *grads, float *m, float *v, float lr,
               float beta1, float beta2, float eps, float weight_decay, int32_t step,
               int32_t working_dtype, void *working, void *) {
    return guarded("pmoe_adamw_step", [&] {
        // Bias corrections of the zero-initialised moments, computed once in double.
        const float correction1 = float(1.0 - std::pow(double(beta1), step));
        const float correction2 = float(1.0 - std::pow(double(beta2), step));
        const int threads = threads_for(n);
        // Updates element i in place and returns the new value.
        auto update = [&](int64_t i) {
            const float g = grads[i], p = params[i];
            const float mi = beta1 * m[i] + (1.0f - beta1) * g;
            const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            const float updated = p - lr * ((mi / correction1) / (std::sqrt(vi / correction2) + eps) +
                                            weight_decay * p);
            params[i] = updated;
            return updated;
        };
        return with_dtype(working_dtype, [&](auto t) {
            using W = decltype(t);
            W *copy = static_cast<W *>(working);
            // simd: the buffers do not overlap (the ABI's contract), which GCC cannot prove.
            if (!copy) {
#pragma omp parallel for simd num_threads(threads) schedule(static)
                for (int64_t i = 0; i < n; i++) update(i);
                return PMOE_OK;
            }
            // With a working copy: per chunk, the same f32 update as the loop above, then a loop of
            // its own rounding the chunk's updated masters (8 KiB, still in L1) into the copy.
            // One loop doing both mixes 4- and 2-byte lanes and ran slower than the update
            // followed by a separate convert.
            constexpr int64_t chunk = 2048;
#pragma omp parallel for num_threads(threads) schedule(static)
            for (int64_t c0 = 0; c0 < n; c0 += chunk) {
                const int64_t c1 = std::min(n, c0 + chunk);
#pragma omp simd
                for (int64_t i = c0; i < c1; i++) update(i);
                for (int64_t i = c0; i < c1; i++) copy[i] = store<W>(params[i]);
            }
            return PMOE_OK;
        });
    });
}

int sum_squares(int64_t n, const float *x, double *sum_squares, void *) {
    return guarded("pmoe_sum_squares", [&] {
        // Fixed blocks of 64 Ki elements, each a lane sum, then the blocks in order: the
        // blocking depends on n only, never on the thread count.
        constexpr int64_t block = 1 << 16;
        const int64_t blocks = (n + block - 1) / block;
        std::vector<double> partial(blocks);
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const float *xb = x + b * block;
            partial[b] = lane_sum<double>(std::min(block, n - b * block),
                                          [&](int64_t i) { return double(xb[i]) * xb[i]; });
        }
        double total = 0;
        for (double p : partial) total += p;
        *sum_squares = total;
        return PMOE_OK;
    });
}

} // namespace pmoe_impl
