// Helpers shared by the dense transformer kernels: fixed-order reductions and float argument
// checks. Every reduction here has an order that depends only on the sizes, never on the thread
// count or on how a buffer happens to be aligned, so results are bitwise reproducible.
#pragma once

#include <algorithm>

#include "common.hpp"

namespace pmoe {

// sum_{i < n} term(i) as 8 interleaved partial sums added left to right at the end. The
// fixed-width inner loop vectorises without -ffast-math (at AVX2 one register of floats, two of
// doubles), and its order is the same on every call and at every level. Always inlined, so that
// a term written inside an AVX-512 target region (attention_rows.inc, norm_rows.inc) is inlined
// with it there rather than called per element.
template <typename Acc, typename Term> [[gnu::always_inline]] inline Acc lane_sum(int64_t n, Term term) {
    constexpr int lanes = 8;
    Acc acc[lanes] = {};
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes)
        for (int j = 0; j < lanes; j++) acc[j] += Acc(term(i + j));
    for (int j = 0; i < n; i++, j++) acc[j] += Acc(term(i));
    Acc sum = 0;
    for (int j = 0; j < lanes; j++) sum += acc[j];
    return sum;
}

// out[c] += sum_{r < rows} term(r, c) for every c < cols (weight and bias gradients): each column
// starts from out[c] and adds the rows in order in double, rounded once at the end. Threads own
// blocks of 64 columns, so no column's order depends on the thread count; a block reads whole
// cache lines of each row and its inner loop vectorises.
template <typename Term> void add_column_sums(int64_t rows, int64_t cols, Term term, float *out) {
    constexpr int64_t block = 64;
    const int64_t blocks = (cols + block - 1) / block;
#pragma omp parallel for num_threads(pmoe::threads_for(rows * cols)) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t c0 = b * block, width = std::min(block, cols - c0);
        double acc[block];
        for (int64_t j = 0; j < width; j++) acc[j] = out[c0 + j];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < width; j++) acc[j] += double(term(r, c0 + j));
        for (int64_t j = 0; j < width; j++) out[c0 + j] = float(acc[j]);
    }
}

// dbias[c] += sum_r dout[r, c]: the gradient of a bias added to every row.
template <typename T>
void add_bias_gradient(int64_t rows, int64_t cols, const T *dout, float *dbias) {
    add_column_sums(
        rows, cols, [&](int64_t r, int64_t c) { return load(dout[r * cols + c]); }, dbias);
}

} // namespace pmoe
