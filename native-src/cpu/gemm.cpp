// The GEMM engine behind pmoe_gemm, pmoe_gemm_bf16 and the grouped expert GEMMs (nn, nt, tn;
// f32 and bf16).
//
// One BLIS/GotoBLAS-style algorithm serves every entry point and instruction-set level. A call
// becomes a list of problems (one per expert group, or one for a dense GEMM), each problem is
// cut into work items (a block of rows x a block of columns of C), and one OpenMP region hands
// the items of all problems to the threads, so many small groups still keep every core busy.
// Inside an item:
//
//   for each depth block (at most KC deep):
//     for each NC columns of the item:            pack op(B)[depth, cols] into NR-wide panels
//       for each MC rows of the item:             pack op(A)[rows, depth] into MR-tall panels
//                                                 (first column block only: kept for the others)
//         for each NR column panel, MR row panel: micro-kernel, C += alpha * A*B
//
// A kernel that multiplies many problems by one op(B) (attention: every query block by the
// same keys and values) packs it once with pack_b, whole depth to a panel, and the problems
// read their depth blocks from there. Packing is a copy, so every result is the one the
// per-block packing gives: the panels are the same but where a problem uses fewer columns than
// were packed, and there the last panel's extra lanes hold real columns instead of zeros, which
// only those lanes' accumulators see (the kernels' lanes are independent and stores masked).
//
// Transposes and the bf16 -> f32 widening are absorbed by the packing routines, so each level
// has one micro-kernel per panel format: AVX2 (6 x 16, here), AVX-512 (14 x 32, f32 FMA) and
// AVX512_BF16 (14 x 32, vdpbf16ps on bf16 pairs: gemm_avx512.cpp). Below AVX512_BF16, bf16
// operands are widened to f32 panels (exact) and run the level's f32 kernel. KC is sized for a
// 48 KiB L1d on every host, MC follows the host's L2. A bf16 C is accumulated in an f32 copy of
// the item and rounded once, each column panel right after its last depth block (the AVX-512
// kernels round in registers on that block and store the bf16 C themselves; when the whole
// depth is one block they need no f32 copy at all: the same values).
//
// Determinism: every element of C is owned by one item (one thread) and is computed as a fixed
// chain: acc_j = sum over the steps of the j-th depth block (in order, from 0), then
// c = fma(alpha, acc_j, c) block after block, where the depth blocks depend only on k and the
// level. Edge tiles run the same full kernel on zero-padded panels. So the result does not
// depend on the thread count, on how items are split or scheduled, on the host or on the run.
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "gemm.hpp"

namespace pmoe {
namespace {

constexpr int ITEMS_PER_THREAD = 4; // the most items per thread a problem is cut into
constexpr double TAIL_ITEMS = 0.5;  // the expected imbalance of the dynamic schedule, in items
constexpr int MIN_ITEM_SIDE = 96;   // rows (columns) are not split below this: packing must amortize
constexpr int NC = 2048;            // max columns of a packed B block: it lives in L3
constexpr int MAX_KC_STEPS = 512;   // bounds zero_row and the depth of a block
// The L1d a depth block is sized for (its B micro-panel fills ~3/4 of it): Zen 5's, on every
// host. Sized for the host's 32 KiB L1d instead, a Zen 4 summed C in other blocks than Zen 5
// and its results differed in the last bits. There (both levels) the larger blocks cost nothing
// measurable: 0.96-0.99x the time on big GEMMs, 0.91-1.04x on small ones (jmh/README.md,
// tenth session).
constexpr long DEPTH_BLOCK_L1D = 48 << 10;

GemmProblem make_problem(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const void *a, int64_t lda, const void *b, int64_t ldb, float beta, void *c,
                     int64_t ldc, bool bf16_in = false, bool bf16_out = false) {
    GemmProblem p{m, n, k, alpha, beta, a, 0, 0, b, 0, 0, c, ldc, bf16_in, bf16_out};
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

// ---- the AVX2 micro-kernel (the library's baseline ISA) ----

constexpr int AVX2_MR = 6;  // 6 x 2 accumulators + 2 B + 1 A register of the 16
constexpr int AVX2_NR = 16; // two 8-float vectors
constexpr int C_PREFETCH_DEPTH = 64; // the micro-kernel pulls its C tile into L1 this many steps early

// The NR floats of a C tile row span one or two cache lines.
template <int Hint> inline void prefetch_c_row(const float *row) {
    _mm_prefetch(reinterpret_cast<const char *>(row), _mm_hint(Hint));
    _mm_prefetch(reinterpret_cast<const char *>(row + AVX2_NR - 1), _mm_hint(Hint));
}

void avx2_kernel(int kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                 float alpha, float beta, bool first) {
    constexpr int MR = AVX2_MR, NR = AVX2_NR;
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

const MicroKernel micro_avx2_f32 = {AVX2_MR, AVX2_NR, 1, &avx2_kernel, nullptr};

// ---- blocking ----

// A micro-kernel with the cache blocking chosen for it on this host.
struct Engine {
    MicroKernel u;
    int kc_steps; // steps of a depth block: its B micro-panel (kc_steps x NR words), ~3/4 of DEPTH_BLOCK_L1D
    int mc;       // rows of a packed A block (mc x kc_steps words): ~0.43 of L2
    int kc() const { return kc_steps * u.depth_per_step; }
};

long cache_size(int name, long fallback) {
    const long v = sysconf(name);
    return v > 0 ? v : fallback;
}

Engine make_engine(const MicroKernel &u) {
    // The depth blocks fix the order of C's sums, so they follow DEPTH_BLOCK_L1D, not the host's
    // L1d: a level gives the same bits on every host. MC only sets how rows are cut, so it
    // follows the host's L2 (about 0.43 of it; tuned on Zen 3, flat within a few percent).
    const long l2 = cache_size(_SC_LEVEL2_CACHE_SIZE, 512 << 10);
    const int word = sizeof(float);
    const int steps =
        int(std::clamp<long>(DEPTH_BLOCK_L1D * 3 / 4 / (u.nr * word) / 8 * 8, 64, MAX_KC_STEPS));
    const int mc = int(std::max<long>(u.mr, l2 * 43 / 100 / (long(steps) * word) / u.mr * u.mr));
    return {u, steps, mc};
}

// The engine for f32 (bf16 == false) or bf16 operands at the level in use.
const Engine &engine_for(bool bf16) {
    static const Engine avx2 = make_engine(micro_avx2_f32);
    static const Engine avx512 = make_engine(micro_avx512_f32);
    static const Engine avx512_bf16 = make_engine(micro_avx512_bf16);
    switch (cpu_isa_level()) {
    case PMOE_ISA_AVX512_BF16: return bf16 ? avx512_bf16 : avx512;
    case PMOE_ISA_AVX512: return avx512;
    default: return avx2;
    }
}

// Depth of the k blocks: the fewest blocks of at most KC, made equal so no block is a sliver,
// and a whole number of steps (only the last block may end in a half-filled pair).
int64_t depth_block(const Engine &e, int64_t k) {
    return round_up(ceil_div(k, ceil_div(k, e.kc())), e.u.depth_per_step);
}

// Whether a bf16 C needs an f32 copy: its depth spans several blocks (the partial sums are
// kept in f32 between them), or the level's kernel cannot round and store bf16 itself.
bool needs_f32_copy(const Engine &e, const GemmProblem &p) {
    // k == 0 has no product: C is only scaled, in place.
    return p.bf16_out && p.k > 0 && (e.u.run_to_bf16 == nullptr || depth_block(e, p.k) < p.k);
}

// Cuts the problems into items. An item of rows x cols packs its rows of A and its columns of
// B once per depth block: k * (rows + cols) words for 2 * rows * cols * k flops, so small items
// of a shallow product spend much of their time packing. Each problem is cut into the R x C
// grid of at most its share of ITEMS_PER_THREAD items per thread (at least one item) whose
// estimated time is least: the rounds of items a thread runs (3 equal items on 2 threads take
// 2 rounds), plus TAIL_ITEMS of an item for the imbalance that the dynamic schedule leaves when
// a thread is held up, times an item's compute and packing. Sides are not cut below
// MIN_ITEM_SIDE unless the problem is smaller. An item whose bf16 C needs an f32 copy
// (needs_f32_copy) is at most 4 * MC rows x NC columns, which bounds the copy. The
// micro-panels of a side are dealt out evenly, so blocks differ by at most one panel.
std::vector<Item> make_items(const Engine &e, const std::vector<GemmProblem> &problems, int threads) {
    const int nr = e.u.nr, mr = e.u.mr;
    int64_t busy = 0;
    for (const GemmProblem &p : problems) busy += p.m > 0 && p.n > 0;
    if (busy == 0) return {};
    const int64_t share = ceil_div(ITEMS_PER_THREAD * threads, busy);
    // The kernels do 1 to 2 multiply-adds of 16 lanes a cycle per depth step of 1 or 2; a
    // packed word takes about a cycle: ~64 flops of f32 work, ~128 of bf16-pair work.
    const double pack_flops = 64.0 * e.u.depth_per_step;
    std::vector<Item> items;
    for (size_t i = 0; i < problems.size(); i++) {
        const GemmProblem &p = problems[i];
        if (p.m == 0 || p.n == 0) continue;
        const int64_t panels_r = ceil_div(p.m, mr), panels_c = ceil_div(p.n, nr);
        const bool copy = needs_f32_copy(e, p);
        const int64_t min_r = copy ? ceil_div(p.m, 4 * e.mc) : 1;
        const int64_t min_c = copy ? ceil_div(p.n, NC) : 1;
        const int64_t max_r = std::min(panels_r, std::max(min_r, ceil_div(p.m, MIN_ITEM_SIDE)));
        const int64_t max_c = std::min(panels_c, std::max(min_c, ceil_div(p.n, MIN_ITEM_SIDE)));
        const int64_t most = std::max(share, min_r * min_c);
        int64_t best_r = min_r, best_c = min_c;
        double best_time = INFINITY;
        for (int64_t r = min_r; r <= max_r; r++) {
            for (int64_t c = min_c; c <= max_c && r * c <= most; c++) {
                const double item = 2.0 * double(p.m) * double(p.n) / double(r * c) +
                                    pack_flops * (double(p.m) / double(r) + double(p.n) / double(c));
                const double time = (double(ceil_div(r * c, threads)) + TAIL_ITEMS) * item;
                if (time < best_time) best_r = r, best_c = c, best_time = time;
            }
        }
        // Block b of n blocks starts at panel b * panels / n.
        auto start = [](int64_t b, int64_t n, int64_t panels, int w, int64_t size) {
            return std::min(size, b * panels / n * w);
        };
        for (int64_t r = 0; r < best_r; r++) {
            const int64_t r0 = start(r, best_r, panels_r, mr, p.m);
            const int64_t r1 = start(r + 1, best_r, panels_r, mr, p.m);
            for (int64_t c = 0; c < best_c; c++) {
                const int64_t c0 = start(c, best_c, panels_c, nr, p.n);
                const int64_t c1 = start(c + 1, best_c, panels_c, nr, p.n);
                items.push_back({int32_t(i), int32_t(r0), int32_t(r1 - r0), int32_t(c0), int32_t(c1 - c0)});
            }
        }
    }
    return items;
}

// ---- packing ----
//
// A block of `lanes` x depth elements is packed into W-lane panels of 32-bit words: panel q
// holds word (q * W + l, s) at dst[q * steps * W + s * W + l]; lanes past the end of the last
// panel, and depth past the end of the block, are zero. A word is one f32 (widened from bf16
// when the source is bf16) or, for the vdpbf16ps kernel, the bf16 pair (2s, 2s + 1). The same
// routines pack A (lanes = rows, W = MR) and B (lanes = columns, W = NR). Which loop runs
// depends on which index is contiguous in memory, so the source is always read in runs.

alignas(64) const float zero_row[MAX_KC_STEPS * 2] = {}; // stands in for lanes past the end

// The packing loops below read f32 words, or bf16 elements that they widen to f32 (exact: the
// bf16 bits are the high half of the f32).
inline __m256 load8(const float *s) { return _mm256_loadu_ps(s); }
inline __m256 load8(const uint16_t *s) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float to_f32(float x) { return x; }
inline float to_f32(uint16_t x) { return bf16_to_f32(x); }

// The mask of the first n of 8 32-bit lanes, for masked stores of partial groups.
inline __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Stores the first n (at most 8) 32-bit words of v (the AVX-512 kernel's 14-row panels end in
// 6 of 8).
inline void store_words(void *dst, __m256i v, int n) {
    if (n == 8) return _mm256_storeu_si256(static_cast<__m256i *>(dst), v);
    _mm256_maskstore_epi32(static_cast<int *>(dst), first_lanes(n), v);
}
inline void store_words(float *d, __m256 v, int n) { store_words(d, _mm256_castps_si256(v), n); }

// An f32 tail is one masked move.
template <class T> inline void copy_words(const T *s, float *d, int n) {
    int l = 0;
    for (; l + 8 <= n; l += 8) _mm256_storeu_ps(d + l, load8(s + l));
    if constexpr (std::is_same_v<T, float>) {
        if (l < n) {
            const __m256i m = first_lanes(n - l);
            _mm256_maskstore_ps(d + l, m, _mm256_maskload_ps(s + l, m));
        }
    } else {
        for (; l < n; l++) d[l] = to_f32(s[l]);
    }
}

// Pulls the `bytes` from row into L1, a cache line at a time.
inline void prefetch_row(const void *row, int64_t bytes) {
    for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(static_cast<const char *>(row) + off, _MM_HINT_T0);
}

// Lanes contiguous: element (l, p) at src[l + p * ld]. Each depth row is copied W at a time.
template <class T>
void pack_lanes_contiguous(int W, const T *src, int64_t ld, int lanes, int kc, float *dst) {
    const int full = lanes / W * W, rest = lanes - full;
    const int64_t panel = int64_t(kc) * W;
    for (int p = 0; p < kc; p++) {
        const T *s = src + p * ld;
        float *d = dst + p * W;
        if (p + PACK_PREFETCH_ROWS < kc) prefetch_row(s + PACK_PREFETCH_ROWS * ld, lanes * sizeof(T));
        for (int q = 0; q < full; q += W, d += panel) copy_words(s + q, d, W);
        if (rest) {
            copy_words(s + full, d, rest);
            std::memset(d + rest, 0, (W - rest) * sizeof(float));
        }
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

// Depth contiguous: word (l, s) at src[l * ld + s] (ld in elements). Groups of 8 lanes are read
// 8 deep and transposed in registers. Serves f32 data, bf16 pairs (as words) and widened bf16.
template <class T>
void pack_depth_contiguous(int W, const T *src, int64_t ld, int lanes, int steps, float *dst) {
    for (int q = 0; q < lanes; q += W, dst += int64_t(steps) * W) {
        for (int g = 0; g < W; g += 8) {
            const int width = std::min(8, W - g); // lanes of this group that belong to the panel
            const T *row[8];
            for (int r = 0; r < 8; r++)
                row[r] = r < width && q + g + r < lanes ? src + (q + g + r) * ld : reinterpret_cast<const T *>(zero_row);
            int p = 0;
            for (; p + 8 <= steps; p += 8) {
                __m256 v[8];
                for (int r = 0; r < 8; r++) v[r] = load8(row[r] + p);
                transpose8(v);
                for (int i = 0; i < 8; i++) {
                    store_words(dst + (p + i) * W + g, v[i], width);
                }
            }
            for (; p < steps; p++)
                for (int r = 0; r < width; r++) dst[p * W + g + r] = to_f32(row[r][p]);
        }
    }
}

// Element (l, p) of the block at src[l * lane + p * depth]; one of the strides is 1. Packs
// kc depth elements (zero-padded to whole steps) in the panel format of engine e.
void pack_block(const Engine &e, int W, bool bf16, const void *src, int64_t lane, int64_t depth,
                int lanes, int kc, float *dst) {
    if (!bf16) {
        const float *s = static_cast<const float *>(src);
        if (lane == 1) return pack_lanes_contiguous(W, s, depth, lanes, kc, dst);
        return pack_depth_contiguous(W, s, lane, lanes, kc, dst);
    }
    const uint16_t *s = static_cast<const uint16_t *>(src);
    if (e.u.depth_per_step == 1) {
        if (lane == 1) return pack_lanes_contiguous(W, s, depth, lanes, kc, dst);
        return pack_depth_contiguous(W, s, lane, lanes, kc, dst);
    }
    if (lane == 1)
        return avx512_bf16::pack_pairs_lanes_contiguous(W, s, depth, lanes, kc,
                                                        reinterpret_cast<uint16_t *>(dst));
    if (kc % 2 == 0 && lane % 2 == 0) // pairs are whole 32-bit words of each lane's run
        return pack_depth_contiguous(W, reinterpret_cast<const float *>(s), lane / 2, lanes,
                                           kc / 2, dst);
    // An odd tail (the last pair of each lane is (element, 0)) or odd row stride: rare.
    const int steps = int(ceil_div(kc, 2));
    uint16_t *d16 = reinterpret_cast<uint16_t *>(dst);
    for (int x = 0; x < round_up(lanes, W); x++) {
        uint16_t *d = d16 + int64_t(x / W) * steps * W * 2 + (x % W) * 2;
        for (int p = 0; p < steps * 2; p++)
            d[(p / 2) * W * 2 + p % 2] = x < lanes && p < kc ? s[x * lane + p] : 0;
    }
}

// ---- items ----

// Each thread's buffers: packed A and B panels and the f32 copy of a bf16 C item.
struct Buffers {
    ThreadBuffer a, b, c;
    bool grow(size_t a_floats, size_t b_floats, size_t c_floats) {
        return a.grow(a_floats * sizeof(float)) && b.grow(b_floats * sizeof(float)) &&
               c.grow(c_floats * sizeof(float));
    }
};
thread_local Buffers buffers;

// c[rows, cols] = beta * c (0 when beta == 0): the whole update when there is no product.
void scale_item(const GemmProblem &p, const Item &it) {
    for (int64_t i = it.row0; i < it.row0 + it.rows; i++) {
        for (int64_t j = it.col0; j < it.col0 + it.cols; j++) {
            if (p.bf16_out) {
                uint16_t &x = static_cast<uint16_t *>(p.c)[i * p.ldc + j];
                x = p.beta == 0.0f ? 0 : f32_to_bf16(p.beta * bf16_to_f32(x));
            } else {
                float &x = static_cast<float *>(p.c)[i * p.ldc + j];
                x = p.beta == 0.0f ? 0.0f : p.beta * x;
            }
        }
    }
}

// c16[rows, cols] = c[rows, cols] rounded to bf16.
void round_to_bf16(const float *c, int64_t ldc, uint16_t *c16, int64_t ldc16, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) c16[i * ldc16 + j] = f32_to_bf16(c[i * ldc + j]);
}

const void *element(const void *base, bool bf16, int64_t offset) {
    return static_cast<const char *>(base) + offset * (bf16 ? 2 : 4);
}

// Whether p's op(B) is read from p.b_packed (the conditions of gemm.hpp's GemmProblem).
bool reads_packed_b(const Engine &e, const GemmProblem &p) {
    const PackedB *b = p.b_packed;
    const int dps = e.u.depth_per_step;
    const int64_t end = p.b_depth0 + p.k;
    return b && b->panels && b->nr == e.u.nr && b->depth_per_step == dps && b->bf16 == p.bf16_in &&
           p.n <= b->n && p.b_depth0 >= 0 && p.b_depth0 % dps == 0 && end <= b->k &&
           (end % dps == 0 || end == b->k);
}

// NR-wide panels of op(B): panel q at first + q * stride.
struct BPanels {
    const float *first;
    int64_t stride;
};

// Columns [j0, j0 + nc) x depth [p0, p0 + kc) of p's op(B): in p's packing, or packed into
// buf.b now.
BPanels b_panels(const Engine &e, const GemmProblem &p, int64_t j0, int64_t p0, int kc, int nc,
                 Buffers &buf) {
    const int nr = e.u.nr, dps = e.u.depth_per_step;
    if (reads_packed_b(e, p)) {
        const PackedB &b = *p.b_packed;
        return {b.panels + j0 / nr * b.panel_stride + (p.b_depth0 + p0) / dps * nr, b.panel_stride};
    }
    pack_block(e, nr, p.bf16_in, element(p.b, p.bf16_in, p0 * p.b_row + j0 * p.b_col), p.b_col,
               p.b_row, nc, kc, buf.b.as<float>());
    return {buf.b.as<float>(), ceil_div(kc, dps) * nr};
}

void run_item(const Engine &e, const GemmProblem &p, const Item &it, Buffers &buf) {
    // alpha == 0 follows BLAS: op(A) * op(B) is not formed, so A and B are not read.
    if (p.k == 0 || p.alpha == 0.0f) return scale_item(p, it);
    const int mr = e.u.mr, nr = e.u.nr, dps = e.u.depth_per_step;
    // A bf16 C is accumulated in f32 (an f32 C in place; else the item's block in buf.c, row
    // stride cols, when needs_f32_copy) and rounded once, on its last depth block.
    float *c = static_cast<float *>(p.c) + it.row0 * p.ldc + it.col0;
    int64_t ldc = p.ldc;
    uint16_t *c16 = static_cast<uint16_t *>(p.c) + it.row0 * p.ldc + it.col0;
    const bool copy = needs_f32_copy(e, p);
    if (copy) {
        c = buf.c.as<float>();
        ldc = it.cols;
        if (p.beta != 0.0f)
            for (int i = 0; i < it.rows; i++)
                for (int j = 0; j < it.cols; j++) c[i * ldc + j] = bf16_to_f32(c16[i * p.ldc + j]);
    }
    // A's rows are packed once per depth block, MC rows at a time just before their first use
    // (while B's first column block is in L3), and reused for the item's other column blocks.
    const int64_t kb = depth_block(e, p.k);
    for (int64_t p0 = 0; p0 < p.k; p0 += kb) {
        const int kc = int(std::min<int64_t>(kb, p.k - p0));
        const int steps = int(ceil_div(kc, dps));
        const bool last = p0 + kb >= p.k;
        for (int j0 = 0; j0 < it.cols; j0 += NC) {
            const int nc = std::min(NC, it.cols - j0);
            const BPanels b = b_panels(e, p, it.col0 + j0, p0, kc, nc, buf);
            for (int i0 = 0; i0 < it.rows; i0 += e.mc) {
                const int mc = std::min(e.mc, it.rows - i0);
                float *ai = buf.a.as<float>() + int64_t(i0) * steps;
                if (j0 == 0)
                    pack_block(e, mr, p.bf16_in,
                               element(p.a, p.bf16_in, (it.row0 + i0) * p.a_row + p0 * p.a_col),
                               p.a_row, p.a_col, mc, kc, ai);
                for (int j = 0; j < nc; j += nr) {
                    const float *bj = b.first + j / nr * b.stride;
                    float *cj = c + i0 * ldc + j0 + j;
                    uint16_t *c16j = c16 + i0 * p.ldc + j0 + j;
                    const int tile_cols = std::min(nr, nc - j);
                    if (p.bf16_out && last && e.u.run_to_bf16) {
                        for (int i = 0; i < mc; i += mr)
                            e.u.run_to_bf16(steps, ai + int64_t(i) * steps, bj, copy ? cj + i * ldc : nullptr,
                                            ldc, c16j + i * p.ldc, p.ldc, std::min(mr, mc - i), tile_cols,
                                            p.alpha, p.beta);
                        continue;
                    }
                    for (int i = 0; i < mc; i += mr)
                        e.u.run(steps, ai + int64_t(i) * steps, bj, cj + i * ldc, ldc,
                                std::min(mr, mc - i), tile_cols, p.alpha, p.beta, p0 == 0);
                    // A finished bf16 column panel is rounded while it is still in L1/L2,
                    // rather than in a pass over the whole item afterwards.
                    if (p.bf16_out && last) round_to_bf16(cj, ldc, c16j, p.ldc, mc, tile_cols);
                }
            }
        }
    }
}

// Raises a_need, b_need and c_need (floats) to what run_item needs for `it`.
void buffer_needs(const Engine &e, const GemmProblem &p, const Item &it, size_t &a_need,
                  size_t &b_need, size_t &c_need) {
    if (p.k == 0) return; // scaled only: nothing is packed
    const int64_t steps = ceil_div(depth_block(e, p.k), e.u.depth_per_step);
    a_need = std::max<size_t>(a_need, steps * round_up(it.rows, e.u.mr));
    if (!reads_packed_b(e, p))
        b_need = std::max<size_t>(b_need, steps * round_up(std::min(it.cols, NC), e.u.nr));
    if (needs_f32_copy(e, p)) c_need = std::max<size_t>(c_need, size_t(it.rows) * it.cols);
}

// Runs every problem (all with the same operand type): items of all problems are scheduled
// dynamically across the team. The split and the schedule only decide which thread computes
// an element, never how.
int run_problems(const std::vector<GemmProblem> &problems) {
    if (problems.empty()) return PMOE_OK;
    const Engine &e = engine_for(problems[0].bf16_in);
    const int threads = num_threads();
    const std::vector<Item> items = make_items(e, problems, threads);
    size_t a_need = 0, b_need = 0, c_need = 0;
    double flops = 0;
    for (const GemmProblem &p : problems) flops += 2.0 * p.m * p.n * p.k;
    for (const Item &it : items) buffer_needs(e, problems[it.problem], it, a_need, b_need, c_need);
    if (items.empty()) return PMOE_OK;

    const int64_t count = int64_t(items.size());
    std::atomic<bool> out_of_memory{false};
    // A team only pays off past ~1 MFLOP (32 FLOPs of a packed GEMM cost about what one element
    // of the other kernels does, hence the scaling into threads_for's unit of work).
#pragma omp parallel num_threads(threads) if (count > 1 && threads_for(int64_t(flops / 32)) > 1)
    {
        Buffers &buf = buffers;
        if (!buf.grow(a_need, b_need, c_need)) out_of_memory = true;
#pragma omp barrier
        if (!out_of_memory) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < count; t++)
                run_item(e, problems[items[t].problem], items[t], buf);
        }
    }
    if (out_of_memory)
        return fail(PMOE_ERR_RUNTIME,
                    "out of memory for the GEMM buffers (%zu + %zu + %zu floats)", a_need, b_need,
                    c_need);
    return PMOE_OK;
}

} // namespace

bool pack_b(const void *b, int64_t b_row, int64_t b_col, bool bf16, int64_t k, int64_t n,
            ThreadBuffer &into, PackedB &packed) {
    const Engine &e = engine_for(bf16);
    const int nr = e.u.nr, dps = e.u.depth_per_step;
    const int64_t stride = ceil_div(k, dps) * nr;
    if (!into.grow(ceil_div(n, nr) * stride * sizeof(float))) return false;
    float *dst = into.as<float>();
    // pack_block makes panels as deep as the depth it is given and reads at most a depth block
    // deep (zero_row), so it packs one panel of one depth block at a time here; every block but
    // the last is a whole number of steps, so each lands at its own steps of the panel.
    for (int64_t p0 = 0; p0 < k; p0 += e.kc())
        for (int64_t j0 = 0; j0 < n; j0 += nr)
            pack_block(e, nr, bf16, element(b, bf16, p0 * b_row + j0 * b_col), b_col, b_row,
                       int(std::min<int64_t>(nr, n - j0)), int(std::min<int64_t>(e.kc(), k - p0)),
                       dst + j0 / nr * stride + p0 / dps * nr);
    packed = {dst, k, n, stride, nr, dps, bf16};
    return true;
}

bool gemm_on_this_thread(const GemmProblem &p) {
    if (p.m == 0 || p.n == 0) return true;
    const Engine &e = engine_for(p.bf16_in);
    const Item it{0, 0, int32_t(p.m), 0, int32_t(p.n)};
    size_t a_need = 0, b_need = 0, c_need = 0;
    buffer_needs(e, p, it, a_need, b_need, c_need);
    Buffers &buf = buffers;
    if (!buf.grow(a_need, b_need, c_need)) return false;
    run_item(e, p, it, buf);
    return true;
}

namespace {

// ---- validation (messages shared with the CUDA library: checks.cpp) ----

// Sizes, then offsets[0 .. groups] starting at 0 and not decreasing.
int require_offsets(int32_t groups, const int32_t *offsets, int32_t k, int32_t n) {
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

// The nn / nt products: c[rows_g, n] = a[rows_g, k] * op(weights[g]), all f32 or all bf16.
int grouped_forward(bool trans_b, bool bf16, int32_t groups, const int32_t *offsets, int32_t k,
                    int32_t n, const void *a, const void *const *weights, void *c) {
    PMOE_CHECK(require_grouped(groups, offsets, k, n, a, "c", c, n));
    PMOE_CHECK(require_weights(groups, offsets, k, n, weights));
    std::vector<GemmProblem> problems;
    for (int32_t g = 0; g < groups; g++) {
        const int64_t r0 = offsets[g], rows = offsets[g + 1] - r0;
        if (rows == 0 || n == 0) continue;
        const void *w = k > 0 ? weights[g] : nullptr; // k == 0: c = 0, weights unread
        problems.push_back(make_problem(false, trans_b, rows, n, k, 1.0f, element(a, bf16, r0 * k),
                                        k, w, trans_b ? k : n, 0.0f,
                                        const_cast<void *>(element(c, bf16, r0 * n)), n, bf16, bf16));
    }
    return run_problems(problems);
}

// The weight gradients: out[g][k, n] = beta * out[g] + a[rows_g, k]^T * b[rows_g, n].
int grouped_tn(bool bf16_in, bool bf16_out, int32_t groups, const int32_t *offsets, int32_t k,
               int32_t n, const void *a, const void *b, float beta, void *const *out) {
    PMOE_CHECK(require_grouped(groups, offsets, k, n, a, "b", b, n));
    if (int64_t(k) * n == 0) return PMOE_OK; // every out[g] is empty
    PMOE_CHECK(require_data("out", out, groups));
    for (int32_t g = 0; g < groups; g++)
        if (!out[g]) return fail_null_out(g);
    // An empty group still gets out[g] = beta * out[g]: the engine scales when depth is 0.
    std::vector<GemmProblem> problems;
    for (int32_t g = 0; g < groups; g++) {
        const int64_t r0 = offsets[g], rows = offsets[g + 1] - r0;
        problems.push_back(make_problem(true, false, k, n, rows, 1.0f, element(a, bf16_in, r0 * k),
                                        k, element(b, bf16_in, r0 * n), n, beta, out[g], n,
                                        bf16_in, bf16_out));
    }
    return run_problems(problems);
}

} // namespace
} // namespace pmoe

namespace pmoe_impl {

int gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
         const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
         int32_t ldc, void *) {
    return guarded("pmoe_gemm", [&] {
        return run_problems({make_problem(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)});
    });
}

int gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
              const void *a, int32_t lda, const void *b, int32_t ldb, float beta, int32_t c_dtype,
              void *c, int32_t ldc, void *) {
    return guarded("pmoe_gemm_bf16", [&] {
        return run_problems({make_problem(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                                          ldc, true, c_dtype == PMOE_DTYPE_BF16)});
    });
}

int grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *const *weights, float *c, void *) {
    return guarded("pmoe_grouped_gemm_nn", [&] {
        return grouped_forward(false, false, groups, offsets, k, n, a,
                               reinterpret_cast<const void *const *>(weights), c);
    });
}

int grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *const *weights, float *c, void *) {
    return guarded("pmoe_grouped_gemm_nt", [&] {
        return grouped_forward(true, false, groups, offsets, k, n, a,
                               reinterpret_cast<const void *const *>(weights), c);
    });
}

int grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *) {
    return guarded("pmoe_grouped_gemm_nn_bf16", [&] {
        return grouped_forward(false, true, groups, offsets, k, n, a, weights, c);
    });
}

int grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *) {
    return guarded("pmoe_grouped_gemm_nt_bf16", [&] {
        return grouped_forward(true, true, groups, offsets, k, n, a, weights, c);
    });
}

int grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *b, float beta, float *const *out, void *) {
    return guarded("pmoe_grouped_gemm_tn", [&] {
        return grouped_tn(false, false, groups, offsets, k, n, a, b, beta,
                          reinterpret_cast<void *const *>(out));
    });
}

int grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *b, float beta, int32_t out_dtype,
                         void *const *out, void *) {
    return guarded("pmoe_grouped_gemm_tn_bf16", [&] {
        return grouped_tn(true, out_dtype == PMOE_DTYPE_BF16, groups, offsets, k, n, a, b, beta, out);
    });
}

} // namespace pmoe_impl
