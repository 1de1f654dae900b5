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

// Weight and bias gradients are column sums: out[c] += sum_{r < rows} term(r, c), each column
// starting from out[c] and adding the rows in order in double, rounded once at the end. Threads
// own blocks of COLUMN_BLOCK columns (for_each_column_block), so no column's order depends on
// the thread count; a block reads whole cache lines of each row and its inner loop vectorises.
constexpr int64_t COLUMN_BLOCK = 64;

// block(c0, width) for each block of COLUMN_BLOCK columns of [0, cols), in parallel.
template <typename Block> void for_each_column_block(int64_t rows, int64_t cols, Block block) {
    const int64_t blocks = (cols + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for num_threads(pmoe::threads_for(rows * cols)) schedule(static)
    for (int64_t b = 0; b < blocks; b++) block(b * COLUMN_BLOCK, std::min(COLUMN_BLOCK, cols - b * COLUMN_BLOCK));
}

// The column sums of columns [c0, c0 + width) (width <= COLUMN_BLOCK). Always inlined, so that
// a term written inside an AVX-512 target region is compiled there with it.
template <typename Term>
[[gnu::always_inline]] inline void add_column_block(int64_t rows, int64_t c0, int64_t width, Term term, float *out) {
    double acc[COLUMN_BLOCK];
    for (int64_t j = 0; j < width; j++) acc[j] = out[c0 + j];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < width; j++) acc[j] += double(term(r, c0 + j));
    for (int64_t j = 0; j < width; j++) out[c0 + j] = float(acc[j]);
}

} // namespace pmoe
