// Optimizer kernels over flat f32 buffers: the AdamW update (on the gradients scaled by the
// clipping factor as it reads them, optionally writing the f32 or bf16 working copy of the
// updated masters; its loops are elementwise_spans.inc's, at the level in use) and the sum of
// squares behind global gradient-norm clipping.
#include <algorithm>
#include <vector>

#include "common.hpp"
#include "dense.hpp"
#include "elementwise.hpp"

namespace pmoe_impl {

int adamw_step(int64_t n, float *params, const float *grads, float grad_scale, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float weight_decay, int32_t step,
               int32_t working_dtype, void *working, void *) {
    return guarded("pmoe_adamw_step", [&] {
        // Bias corrections of the zero-initialised moments, computed once in double.
        const pmoe::AdamWStep s{grad_scale, lr, beta1, beta2, eps, weight_decay,
                                float(1.0 - std::pow(double(beta1), step)),
                                float(1.0 - std::pow(double(beta2), step))};
        return with_dtype(working_dtype, [&](auto t) {
            using W = decltype(t);
            const auto span = pmoe::at_level_in_use(&pmoe::avx2_elem::adamw_span<W>, &pmoe::avx512_elem::adamw_span<W>);
            W *copy = static_cast<W *>(working);
            // Chunks of 8 KiB of masters: a copy rounds them while they are still in L1.
            constexpr int64_t chunk = 2048;
#pragma omp parallel for num_threads(threads_for(n)) schedule(static)
            for (int64_t c0 = 0; c0 < n; c0 += chunk) {
                const int64_t len = std::min(chunk, n - c0);
                span(s, len, params + c0, grads + c0, m + c0, v + c0, copy ? copy + c0 : nullptr);
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
