// f32 GEMM engine behind pmoe_gemm and the grouped expert GEMMs (nn, nt, tn).
//
// One BLIS/GotoBLAS-style algorithm serves all four entry points. A call becomes a list of
// problems (one per expert group, or one for pmoe_gemm), each problem is cut into work items
// (a block of rows x a block of columns of C), and one OpenMP region hands the items of all
// problems to the threads, so many small groups still keep every core busy. Inside an item:
//
//   for each depth block (at most KC deep):     pack op(B)[depth, item cols] into NR-wide panels
//     for each MC rows of the item:             pack op(A)[rows, depth] into MR-tall panels
//       for each NR column panel, MR row panel: 6x16 AVX2+FMA micro-kernel, C += alpha * A*B
//
// Transposes are absorbed by the packing routines, so there is a single micro-kernel.
//
// Determinism: every element of C is owned by one item (one thread) and is computed as a fixed
// chain: acc_j = fma-sum over p (in order, from 0) of the j-th depth block, then
// c = fma(alpha, acc_j, c) block after block, where the depth blocks depend only on k. Edge tiles
// run the same full kernel on zero-padded panels. So the result does not depend on the thread
// count, on how items are split or scheduled, or on the run.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "checks.hpp"

namespace pmoe {
namespace {

// Blocking for Zen 3 (L1d 32 KiB, L2 512 KiB per core, shared L3), tuned side by side with
// OpenBLAS on the expert shapes; the results are flat within a few percent around these values.
constexpr int MR = 6;    // rows of the micro-tile (6 x 2 accumulators + 2 B + 1 A register)
constexpr int NR = 16;   // columns of the micro-tile: two 8-float AVX vectors
constexpr int KC = 384;  // max depth of a packed block: a KC x NR B panel is 24 KiB, in L1
constexpr int MC = 144;  // rows of a packed A block: MC x KC floats = 216 KiB, in L2
constexpr int NC = 1024; // max columns of an item: its packed B (KC x NC, 1.5 MiB) lives in L3
constexpr int C_PREFETCH_DEPTH = 64; // the micro-kernel pulls its C tile into L1 this many steps early
constexpr int ITEMS_PER_THREAD = 4;  // enough items for the dynamic schedule to balance
constexpr int MIN_ITEM_ROWS = 96;    // rows are not split below this: B packing must amortize

// C = alpha * op(A) * op(B) + beta * C, row-major. Element (i, p) of op(A) is
// a[i * a_row + p * a_col]; element (p, j) of op(B) is b[p * b_row + j * b_col].
struct Problem {
    int64_t m, n, k;
    float alpha, beta;
    const float *a;
    int64_t a_row, a_col;
    const float *b;
    int64_t b_row, b_col;
    float *c;
    int64_t ldc;
};

Problem make_problem(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                     float *c, int64_t ldc) {
    Problem p{m, n, k, alpha, beta, a, 0, 0, b, 0, 0, c, ldc};
    p.a_row = trans_a ? 1 : lda;
    p.a_col = trans_a ? lda : 1;
    p.b_row = trans_b ? 1 : ldb;
    p.b_col = trans_b ? ldb : 1;
    return p;
}

// A block of C: rows [row0, row0 + rows) x columns [col0, col0 + cols) of one problem.
struct Item {
    int32_t problem;
    int32_t row0, rows, col0, cols;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Depth of the k blocks: the fewest blocks of at most KC, made equal so no block is a sliver.
int depth_block(int64_t k) { return int(ceil_div(k, ceil_div(k, KC))); }

// Cuts the problems into items. An item spans all rows of a column block, so every element of B
// is packed (read from memory) once per call, unless that leaves fewer than ITEMS_PER_THREAD
// items per thread: then rows are split too (down to MIN_ITEM_ROWS). Blocks are balanced so
// that no edge block is a sliver.
std::vector<Item> make_items(const std::vector<Problem> &problems, int threads) {
    int64_t col_blocks = 0;
    for (const Problem &p : problems)
        if (p.m > 0) col_blocks += ceil_div(p.n, NC);
    if (col_blocks == 0) return {};
    const int64_t row_split = std::max<int64_t>(1, ceil_div(ITEMS_PER_THREAD * threads, col_blocks));
    std::vector<Item> items;
    for (size_t i = 0; i < problems.size(); i++) {
        const Problem &p = problems[i];
        if (p.m == 0 || p.n == 0) continue;
        const int64_t row_blocks = std::min(row_split, ceil_div(p.m, MIN_ITEM_ROWS));
        const int64_t rows = round_up(ceil_div(p.m, row_blocks), MR);
        const int64_t cols = round_up(ceil_div(p.n, ceil_div(p.n, NC)), NR);
        for (int64_t r = 0; r < p.m; r += rows)
            for (int64_t c = 0; c < p.n; c += cols)
                items.push_back({int32_t(i), int32_t(r), int32_t(std::min(rows, p.m - r)), int32_t(c),
                                 int32_t(std::min(cols, p.n - c))});
    }
    return items;
}

// ---- packing ----
//
// A block of `lanes` x kc elements is packed into W-lane panels: panel q holds element
// (q * W + l, p) at dst[q * kc * W + p * W + l]; lanes past the end of the last panel are zero.
// The same routines pack A (lanes = rows, W = MR) and B (lanes = columns, W = NR). Which one runs
// depends on which index is contiguous in memory, so the source is always read in runs.

alignas(32) const float zero_row[KC] = {}; // stands in for lanes past the end of a block

// Lanes contiguous: element (l, p) at src[l + p * ld]. Each depth row is copied W at a time.
template <int W> void pack_lanes_contiguous(const float *src, int64_t ld, int lanes, int kc, float *dst) {
    const int full = lanes / W * W, rest = lanes - full;
    const int64_t panel = int64_t(kc) * W;
    for (int p = 0; p < kc; p++) {
        const float *s = src + p * ld;
        float *d = dst + p * W;
        for (int q = 0; q < full; q += W, d += panel) std::memcpy(d, s + q, W * sizeof(float));
        if (rest)
            for (int l = 0; l < W; l++) d[l] = l < rest ? s[full + l] : 0.0f;
    }
}

// In-register transpose of an 8 x 8 block of floats.
inline void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        s[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}

// Depth contiguous: element (l, p) at src[l * ld + p]. Groups of 8 lanes are read 8 deep and
// transposed in registers.
template <int W> void pack_depth_contiguous(const float *src, int64_t ld, int lanes, int kc, float *dst) {
    for (int q = 0; q < lanes; q += W, dst += int64_t(kc) * W) {
#pragma GCC unroll 2
        for (int g = 0; g < W; g += 8) {
            const int width = std::min(8, W - g); // lanes of this group that belong to the panel
            const float *row[8];
            for (int r = 0; r < 8; r++)
                row[r] = r < width && q + g + r < lanes ? src + (q + g + r) * ld : zero_row;
            int p = 0;
            for (; p + 8 <= kc; p += 8) {
                __m256 v[8];
                for (int r = 0; r < 8; r++) v[r] = _mm256_loadu_ps(row[r] + p);
                transpose8(v);
                for (int i = 0; i < 8; i++) {
                    float *d = dst + (p + i) * W + g;
                    if (width == 8) {
                        _mm256_storeu_ps(d, v[i]);
                    } else {
                        alignas(32) float tmp[8];
                        _mm256_store_ps(tmp, v[i]);
                        std::memcpy(d, tmp, width * sizeof(float));
                    }
                }
            }
            for (; p < kc; p++)
                for (int r = 0; r < width; r++) dst[p * W + g + r] = row[r][p];
        }
    }
}

// Element (l, p) of the block at src[l * lane + p * depth]; one of the strides is 1.
template <int W>
void pack_block(const float *src, int64_t lane, int64_t depth, int lanes, int kc, float *dst) {
    if (lane == 1)
        pack_lanes_contiguous<W>(src, depth, lanes, kc, dst);
    else
        pack_depth_contiguous<W>(src, lane, lanes, kc, dst);
}

// op(A)[i0 : i0 + mc, p0 : p0 + kc] as MR-row panels.
void pack_a(const Problem &pr, int64_t i0, int mc, int64_t p0, int kc, float *dst) {
    pack_block<MR>(pr.a + i0 * pr.a_row + p0 * pr.a_col, pr.a_row, pr.a_col, mc, kc, dst);
}

// op(B)[p0 : p0 + kc, j0 : j0 + nc] as NR-column panels.
void pack_b(const Problem &pr, int64_t p0, int kc, int64_t j0, int nc, float *dst) {
    pack_block<NR>(pr.b + p0 * pr.b_row + j0 * pr.b_col, pr.b_col, pr.b_row, nc, kc, dst);
}

// ---- micro-kernel ----

// The NR floats of a C tile row span one or two cache lines.
template <int Hint> inline void prefetch_c_row(const float *row) {
    _mm_prefetch(reinterpret_cast<const char *>(row), _mm_hint(Hint));
    _mm_prefetch(reinterpret_cast<const char *>(row + NR - 1), _mm_hint(Hint));
}

// acc = A panel (MR x kc) * B panel (kc x NR); then for the mr x nr corner of the tile at c:
// c = fma(alpha, acc, prev) with prev = c, or, on the first depth block, beta * c (0 if
// beta == 0: c is not read). The masked edge path does the same arithmetic as the full path.
void micro_kernel(int kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                  float alpha, float beta, bool first) {
    // Every loop over the tile is unrolled with constant indices, so acc stays in registers.
    // The C tile is usually in memory (an item's C is revisited once per depth block): it is
    // fetched into L2 now, and into L1 C_PREFETCH_DEPTH steps before the end, so that the
    // streaming A and B panels do not evict it from L1 first.
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        prefetch_c_row<_MM_HINT_T1>(c + i * ldc);
    }
    auto step = [&](int p) {
        const float *ap = a + p * MR, *bp = b + p * NR;
        const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(ap + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    };
    int p = 0;
#pragma GCC unroll 4
    for (; p < kc - C_PREFETCH_DEPTH; p++) step(p);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) prefetch_c_row<_MM_HINT_T0>(c + i * ldc);
#pragma GCC unroll 4
    for (; p < kc; p++) step(p);

    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane)};
    const bool full = nr == NR, read_c = !first || beta != 0.0f;
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= mr) continue;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            float *ch = c + i * ldc + 8 * h;
            __m256 prev = _mm256_setzero_ps();
            if (read_c) {
                prev = full ? _mm256_loadu_ps(ch) : _mm256_maskload_ps(ch, mask[h]);
                if (first) prev = _mm256_mul_ps(vb, prev);
            }
            const __m256 out = _mm256_fmadd_ps(va, acc[i][h], prev);
            if (full)
                _mm256_storeu_ps(ch, out);
            else
                _mm256_maskstore_ps(ch, mask[h], out);
        }
    }
}

// ---- items ----

// Per-thread packing buffers, grown as needed and kept for the next call.
struct PackBuffers {
    float *a = nullptr, *b = nullptr;
    size_t a_size = 0, b_size = 0;
    ~PackBuffers() {
        std::free(a);
        std::free(b);
    }
    static bool grow(float *&buf, size_t &size, size_t need) {
        if (need <= size) return true;
        float *fresh = static_cast<float *>(std::aligned_alloc(64, round_up(need * sizeof(float), 64)));
        if (!fresh) return false;
        std::free(buf);
        buf = fresh;
        size = need;
        return true;
    }
};
thread_local PackBuffers buffers;

// c[rows, cols] = beta * c (0 when beta == 0): the whole update when there is no product.
void scale_item(const Problem &p, const Item &it) {
    for (int64_t i = it.row0; i < it.row0 + it.rows; i++) {
        float *ci = p.c + i * p.ldc;
        for (int64_t j = it.col0; j < it.col0 + it.cols; j++)
            ci[j] = p.beta == 0.0f ? 0.0f : p.beta * ci[j];
    }
}

void run_item(const Problem &p, const Item &it, float *pa, float *pb) {
    // alpha == 0 follows BLAS: op(A) * op(B) is not formed, so A and B are not read.
    if (p.k == 0 || p.alpha == 0.0f) return scale_item(p, it);
    const int kb = depth_block(p.k);
    for (int64_t p0 = 0; p0 < p.k; p0 += kb) {
        const int kc = int(std::min<int64_t>(kb, p.k - p0));
        pack_b(p, p0, kc, it.col0, it.cols, pb);
        for (int i0 = 0; i0 < it.rows; i0 += MC) {
            const int mc = std::min(MC, it.rows - i0);
            pack_a(p, it.row0 + i0, mc, p0, kc, pa);
            for (int j = 0; j < it.cols; j += NR) {
                const float *bj = pb + int64_t(j) * kc;
                float *cj = p.c + (it.row0 + i0) * p.ldc + it.col0 + j;
                for (int i = 0; i < mc; i += MR)
                    micro_kernel(kc, pa + int64_t(i) * kc, bj, cj + i * p.ldc, p.ldc,
                                 std::min(MR, mc - i), std::min(NR, it.cols - j), p.alpha,
                                 p.beta, p0 == 0);
            }
        }
    }
}

// Runs every problem: items of all problems are scheduled dynamically across the team. The
// split and the schedule only decide which thread computes an element, never how.
int run_problems(const std::vector<Problem> &problems) {
    const int threads = num_threads();
    const std::vector<Item> items = make_items(problems, threads);
    size_t a_need = 0, b_need = 0;
    double flops = 0;
    for (const Problem &p : problems) {
        if (p.m == 0 || p.n == 0 || p.k == 0) continue;
        const int64_t kc = depth_block(p.k);
        a_need = std::max<size_t>(a_need, kc * round_up(std::min<int64_t>(p.m, MC), MR));
        b_need = std::max<size_t>(b_need, kc * round_up(std::min<int64_t>(p.n, NC), NR));
        flops += 2.0 * p.m * p.n * p.k;
    }
    if (items.empty()) return PMOE_OK;

    const int64_t count = int64_t(items.size());
    std::atomic<bool> out_of_memory{false};
    // A team only pays off past ~1 MFLOP (32 FLOPs of a packed GEMM cost about what one element
    // of the other kernels does, hence the scaling into threads_for's unit of work).
#pragma omp parallel num_threads(threads) if (count > 1 && threads_for(int64_t(flops / 32)) > 1)
    {
        PackBuffers &buf = buffers;
        if (!PackBuffers::grow(buf.a, buf.a_size, a_need) || !PackBuffers::grow(buf.b, buf.b_size, b_need))
            out_of_memory = true;
#pragma omp barrier
        if (!out_of_memory) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < count; t++)
                run_item(problems[items[t].problem], items[t], buf.a, buf.b);
        }
    }
    if (out_of_memory)
        return fail(PMOE_ERR_RUNTIME, "out of memory for the GEMM packing buffers (%zu + %zu floats)",
                    a_need, b_need);
    return PMOE_OK;
}

// ---- validation (messages shared with the CUDA library: checks.cpp) ----

// Sizes, then offsets[0 .. groups] starting at 0 and not decreasing.
int require_offsets(int32_t groups, const int32_t *offsets, int32_t k, int32_t n) {
    PMOE_CHECK(check_grouped_sizes(groups, offsets, k, n));
    if (offsets[0] != 0) return fail_offsets_start(offsets[0]);
    for (int32_t g = 0; g < groups; g++)
        if (offsets[g + 1] < offsets[g])
            return fail_offsets_decrease(g + 1, offsets[g + 1], offsets[g]);
    return PMOE_OK;
}

// Shared checks of the grouped GEMMs: offsets, sizes and the row-major inputs a [rows, k] and
// the second operand [rows, second_cols].
int require_grouped(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const void *a,
                    const char *second, const void *second_ptr, int64_t second_cols) {
    PMOE_CHECK(require_offsets(groups, offsets, k, n));
    const int64_t rows = offsets[groups];
    PMOE_CHECK(require_data("a", a, rows * k));
    PMOE_CHECK(require_data(second, second_ptr, rows * second_cols));
    return PMOE_OK;
}

// weights[g] must be non-NULL for every group whose product reads it.
int require_weights(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                    const void *const *weights) {
    PMOE_CHECK(require_data("weights", weights, int64_t(groups) * k * n > 0 ? groups : 0));
    for (int32_t g = 0; g < groups; g++)
        if (offsets[g + 1] > offsets[g] && int64_t(k) * n > 0 && !weights[g])
            return fail_null_weight(g, offsets[g + 1] - offsets[g]);
    return PMOE_OK;
}

// The nn / nt products: c[rows_g, n] = a[rows_g, k] * op(weights[g]).
int grouped_forward(bool trans_b, int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                    const float *a, const float *const *weights, float *c) {
    PMOE_CHECK(require_grouped(groups, offsets, k, n, a, "c", c, n));
    PMOE_CHECK(
        require_weights(groups, offsets, k, n, reinterpret_cast<const void *const *>(weights)));
    std::vector<Problem> problems;
    for (int32_t g = 0; g < groups; g++) {
        const int64_t r0 = offsets[g], rows = offsets[g + 1] - r0;
        if (rows == 0 || n == 0) continue;
        const float *w = k > 0 ? weights[g] : nullptr; // k == 0: c = 0, weights unread
        problems.push_back(make_problem(false, trans_b, rows, n, k, 1.0f, a + r0 * k, k, w,
                                        trans_b ? k : n, 0.0f, c + r0 * n, n));
    }
    return run_problems(problems);
}

} // namespace
} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                       float alpha, const float *a, int32_t lda, const float *b, int32_t ldb,
                       float beta, float *c, int32_t ldc, void *stream) {
    return guarded("pmoe_gemm", [&] {
        PMOE_CHECK(check_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc));
        return run_problems({make_problem(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)});
    });
}

PMOE_API int pmoe_grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream) {
    return guarded("pmoe_grouped_gemm_nn",
                   [&] { return grouped_forward(false, groups, offsets, k, n, a, weights, c); });
}

PMOE_API int pmoe_grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream) {
    return guarded("pmoe_grouped_gemm_nt",
                   [&] { return grouped_forward(true, groups, offsets, k, n, a, weights, c); });
}

// The reference for the tensor-core kernel of the CUDA library, not a fast path: each group's
// bf16 rows and weights are widened to f32, multiplied by the f32 engine, and every element of
// c is rounded once to bf16.
PMOE_API int pmoe_grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k,
                                       int32_t n, const void *a, const void *const *weights,
                                       void *c, void *stream) {
    return guarded("pmoe_grouped_gemm_nn_bf16", [&] {
        PMOE_CHECK(require_grouped(groups, offsets, k, n, a, "c", c, n));
        PMOE_CHECK(require_weights(groups, offsets, k, n, weights));
        const uint16_t *a16 = static_cast<const uint16_t *>(a);
        uint16_t *c16 = static_cast<uint16_t *>(c);
        auto widen = [](const uint16_t *src, int64_t count, std::vector<float> &dst) {
            dst.resize(count);
            for (int64_t i = 0; i < count; i++) dst[i] = bf16_to_f32(src[i]);
        };
        std::vector<float> a32, w32, c32;
        for (int32_t g = 0; g < groups; g++) {
            const int64_t r0 = offsets[g], rows = offsets[g + 1] - r0;
            if (rows == 0 || n == 0) continue;
            widen(a16 + r0 * k, rows * k, a32);
            if (k > 0) widen(static_cast<const uint16_t *>(weights[g]), int64_t(k) * n, w32);
            c32.resize(rows * n);
            PMOE_CHECK(run_problems({make_problem(false, false, rows, n, k, 1.0f, a32.data(), k,
                                                  w32.data(), n, 0.0f, c32.data(), n)}));
            for (int64_t i = 0; i < rows * n; i++) c16[r0 * n + i] = f32_to_bf16(c32[i]);
        }
        return PMOE_OK;
    });
}

PMOE_API int pmoe_grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *b, float beta, float *const *out,
                                  void *stream) {
    return guarded("pmoe_grouped_gemm_tn", [&] {
        PMOE_CHECK(require_grouped(groups, offsets, k, n, a, "b", b, n));
        if (int64_t(k) * n == 0) return PMOE_OK; // every out[g] is empty
        PMOE_CHECK(require_data("out", out, groups));
        for (int32_t g = 0; g < groups; g++)
            if (!out[g]) return fail_null_out(g);
        // An empty group still gets out[g] = beta * out[g]: the engine scales when depth is 0.
        std::vector<Problem> problems;
        for (int32_t g = 0; g < groups; g++) {
            const int64_t r0 = offsets[g], rows = offsets[g + 1] - r0;
            problems.push_back(make_problem(true, false, k, n, rows, 1.0f, a + r0 * k, k, b + r0 * n,
                                            n, beta, out[g], n));
        }
        return run_problems(problems);
    });
}

} // extern "C"
