// GEMMs: pmoe_gemm and the grouped expert GEMMs (nn, nt, tn), f32 and bf16.
// pmoe_gemm and the f32 grouped forms run one tiled shared-memory product on f32 values (the
// SIMT tiles); the bf16 grouped forms (nn, nt, tn) run on tensor cores (mma.sync m16n8k16, bf16
// in, f32 accumulation; the tc namespace below), and so does pmoe_gemm_bf16 as a grouped GEMM of
// one group wherever its operands lie as one (A B, A B^T or A^T B without padded rows: every
// linear layer's forward and gradients); its other forms widen bf16 operands onto the SIMT tiles.
// A bf16 output is rounded once. The grouped GEMMs are one launch for all groups: a prologue lays the
// groups' output tiles end to end (tile_start, a block scan), and a persistent grid walks that
// list, finding each tile's group by binary search - no per-expert launches, no padding.
// Every output element is computed by one block, accumulated over k in a fixed order, so results
// are deterministic (no split-k). The f32 path is for parity with the CPU.
// On the device, offsets and the weights / out pointer arrays are device memory too (an array of
// device pointers), as every array argument of the ABI is.
#include "common.cuh"
#include "hw.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, kThreads = 256; // a thread owns a 4 x 4 sub-tile
constexpr int kModeNN = 0, kModeNT = 1, kModeTN = 2;
constexpr int kCheckFirstOffset = 0, kCheckDecreasing = 1, kCheckNullMatrix = 2, kCheckNullData = 3,
              kCheckMisaligned = 4;

using Bf16 = __nv_bfloat16;

// Element (i, j) of a matrix of T (float or bf16) at p[i * rs + j * cs], as a float:
// transposes are just strides.
template <typename T> struct View {
    const T *p;
    int64_t rs, cs;
    __device__ __forceinline__ float at(int64_t i, int64_t j) const { return to_float(p[i * rs + j * cs]); }
};

// The 64 x 64 tile at (m0, n0) of C = alpha * A[M, K] * B[K, N] + beta * C (beta == 0: C is not
// read), with A and B of T and C of O. Loads follow the contiguous dimension of each operand so
// that they coalesce.
// The staging tiles are the calling kernel's __shared__ (a template helper's own statics lose
// their shared section in the host-execution harness, which could then not keep them per block).
struct TileStage {
    float As[BK][BM + 4];
    float Bs[BK][BN + 4];
};

template <typename T, typename O>
__device__ void gemm_tile(TileStage &stage, View<T> a, View<T> b, O *c, int64_t ldc, int M, int N,
                          int K, int m0, int n0, float alpha, float beta) {
    float (&As)[BK][BM + 4] = stage.As;
    float (&Bs)[BK][BN + 4] = stage.Bs;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int e = threadIdx.x; e < BM * BK; e += kThreads) {
            const int i = a.cs == 1 ? e / BK : e % BM, kk = a.cs == 1 ? e % BK : e / BM;
            As[kk][i] = m0 + i < M && k0 + kk < K ? a.at(m0 + i, k0 + kk) : 0.0f;
        }
        for (int e = threadIdx.x; e < BN * BK; e += kThreads) {
            const int j = b.cs == 1 ? e % BN : e / BK, kk = b.cs == 1 ? e / BN : e % BK;
            Bs[kk][j] = n0 + j < N && k0 + kk < K ? b.at(k0 + kk, n0 + j) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk++) {
            float av[4], bv[4];
            for (int r = 0; r < 4; r++) av[r] = As[kk][ty * 4 + r];
            for (int q = 0; q < 4; q++) bv[q] = Bs[kk][tx * 4 + q];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) acc[r][q] += av[r] * bv[q];
        }
        __syncthreads();
    }
    for (int r = 0; r < 4; r++) {
        const int i = m0 + ty * 4 + r;
        if (i >= M) continue;
        for (int q = 0; q < 4; q++) {
            const int j = n0 + tx * 4 + q;
            if (j >= N) continue;
            O &out = c[int64_t(i) * ldc + j];
            out = from_float<O>(beta == 0.0f ? alpha * acc[r][q]
                                             : alpha * acc[r][q] + beta * to_float(out));
        }
    }
}

template <typename T, typename O>
__global__ void __launch_bounds__(kThreads)
gemm_kernel(View<T> a, View<T> b, O *c, int64_t ldc, int M, int N, int K, float alpha, float beta) {
    __shared__ TileStage stage;
    gemm_tile(stage, a, b, c, ldc, M, N, K, blockIdx.y * BM, blockIdx.x * BN, alpha, beta);
}

__host__ __device__ __forceinline__ int tiles(int64_t n, int t) { return n <= 0 ? 0 : int((n + t - 1) / t); }

// Output tiles (tile_m x tile_n) of a group of `rows` rows: of c[rows, n] (nn, nt) or of out[k, n]
// (tn, whatever the rows).
__host__ __device__ __forceinline__ int group_tile_count(int mode, int64_t rows, int k, int n, int tile_m,
                                                         int tile_n) {
    return (mode == kModeTN ? tiles(k, tile_m) : tiles(rows, tile_m)) * tiles(n, tile_n);
}

// One block: tile_start[g] = output tiles (tile_m x tile_n) of the groups before g,
// tile_start[groups] = all, tile_start[groups + 1] = 0 (the tensor-core kernel's tile counter);
// also checks offsets and pointers (16-byte aligned matrices if `aligned`). tn tiles cover
// out[g] even for an empty group (beta * out[g]).
__global__ void __launch_bounds__(kThreads)
group_tiles_kernel(int mode, bool aligned, int groups, const int32_t *offsets, int k, int n,
                   int tile_m, int tile_n, const void *const *matrices, const void *a,
                   const void *data, int32_t *tile_start, unsigned long long *checks) {
    __shared__ int32_t scratch[32];
    if (threadIdx.x == 0) {
        if (offsets[0] != 0) record_bad(checks, kCheckFirstOffset, 0);
        const int64_t rows = offsets[groups];
        if (rows > 0 && k > 0 && !a) record_bad(checks, kCheckNullData, 0);
        if (rows > 0 && n > 0 && !data) record_bad(checks, kCheckNullData, 1);
    }
    int32_t carry = 0;
    for (int g0 = 0; g0 < groups; g0 += kThreads) {
        const int g = g0 + threadIdx.x;
        int32_t count = 0;
        if (g < groups) {
            const int64_t rows = int64_t(offsets[g + 1]) - offsets[g];
            if (rows < 0) record_bad(checks, kCheckDecreasing, g + 1);
            const bool needed = mode == kModeTN || (rows > 0 && int64_t(k) * n > 0);
            if (needed && !matrices[g]) record_bad(checks, kCheckNullMatrix, g);
            if (needed && aligned && reinterpret_cast<uintptr_t>(matrices[g]) % 16 != 0)
                record_bad(checks, kCheckMisaligned, g);
            count = group_tile_count(mode, rows, k, n, tile_m, tile_n);
        }
        int32_t total = 0;
        const int32_t before = block_exclusive_scan(count, scratch, &total);
        if (g < groups) tile_start[g] = carry + before;
        carry += total;
    }
    if (threadIdx.x == 0) {
        tile_start[groups] = carry;
        tile_start[groups + 1] = 0;
    }
}

struct GroupTile {
    int g, local; // group, and the tile's index among the group's tiles
};

// Tile `tile` of the list: the last group whose tiles start at or before it (empty groups share
// their start with the next one).
__device__ __forceinline__ GroupTile find_tile(int tile, int groups, const int32_t *tile_start) {
    int lo = 0, hi = groups - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (tile_start[mid] <= tile) lo = mid; else hi = mid - 1;
    }
    return GroupTile{lo, tile - tile_start[lo]};
}

// Persistent grid over the tile list. nn: c[rows_g] = a[rows_g] * W_g; nt: ... * W_g^T;
// tn: out[g] = beta * out[g] + a[rows_g]^T * b[rows_g]. a, b and (nn, nt) W_g of T; c and (tn)
// out[g] of O.
template <typename T, typename O>
__global__ void __launch_bounds__(kThreads)
grouped_gemm_kernel(int mode, int groups, const int32_t *offsets, const int32_t *tile_start,
                    int k, int n, const T *a, const T *b, const void *const *matrices, O *c,
                    float beta) {
    __shared__ TileStage stage;
    const int total = tile_start[groups], tiles_n = tiles(n, BN);
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        const GroupTile t = find_tile(tile, groups, tile_start);
        const int m0 = t.local / tiles_n * BM, n0 = t.local % tiles_n * BN;
        const int64_t r0 = offsets[t.g];
        const int rows = offsets[t.g + 1] - offsets[t.g];
        const void *m = matrices[t.g];
        if (!m) continue; // reported by group_tiles_kernel
        if (mode == kModeTN) {
            gemm_tile(stage, View<T>{a + r0 * k, 1, k}, View<T>{b + r0 * n, n, 1},
                      static_cast<O *>(const_cast<void *>(m)), n, k, n, rows, m0, n0, 1.0f, beta);
        } else {
            const T *w = static_cast<const T *>(m);
            gemm_tile(stage, View<T>{a + r0 * k, k, 1},
                      mode == kModeNN ? View<T>{w, n, 1} : View<T>{w, 1, k}, c + r0 * n, n, rows,
                      n, k, m0, n0, 1.0f, 0.0f);
        }
    }
}

// ---- tensor cores: the bf16 grouped GEMMs (nn, nt, tn), f32 accumulation ----
// A block of 4 warps computes a 128 x 128 output tile, each warp a 64 x 64 quarter of it with
// mma.sync m16n8k16 (4 x 8 accumulators of 16 x 8). Depth steps of 32 are staged in shared memory
// by cp.async, kStages deep, with one barrier per step: the barrier that publishes step s also
// tells every warp that step s - 1's buffer is free, which is the buffer step s + kStages - 1 is
// loaded into. Operands are staged as they lie in global memory, either "k-major" (a row of the
// tile is 32 consecutive k values: a in nn and nt, W in nt) or "mn-major" (a row is 128
// consecutive m or n values at one k: W in nn, both operands of tn); ldmatrix (.trans for
// mn-major) turns either into mma fragments. Rows are XOR-swizzled by 16-byte chunk so that
// the 8 row addresses of every ldmatrix fall in 8 different bank groups.
// Tiles are handed out by a counter (atomicAdd) to a grid sized by occupancy, so blocks that
// draw cheap tiles (tn tiles of small groups, tails) draw more; each tile is computed by one
// block, in a fixed k order, so results do not depend on the schedule. Within a group the m
// tiles of one n column are consecutive: a group's rows are usually fewer than its weight's
// columns, so blocks running together share the weight's column tile in L2.
// Chunks that are not 16 bytes of aligned, in-bounds memory (tails of k or n not multiple of
// 8, a misaligned matrix) are copied element by element (zeros outside), so every shape and
// alignment runs here; only the epilogue's 16-byte stores and the cp.async copies need both.
#ifdef PMOE_HOST_EXEC
#define PMOE_UNROLL
#else
#define PMOE_UNROLL _Pragma("unroll") // register arrays indexed by these loops stay in registers
#endif
namespace tc {
constexpr int kBM = 128, kBN = 128, kBK = 32, kWM = 64, kWN = 64, kStages = 4;
constexpr int kThreads = 32 * (kBM / kWM) * (kBN / kWN), kMI = kWM / 16, kNJ = kWN / 8;
constexpr size_t kStageElements = size_t(kBM) * kBK + size_t(kBK) * kBN;
constexpr size_t kSharedBytes = kStages * kStageElements * sizeof(Bf16); // 64 KiB: fits sm_80's 163
constexpr int kEpiloguePitch = kWN + 8; // f32 staging rows, padded against bank conflicts
static_assert(kThreads / 32 * 16 * kEpiloguePitch * sizeof(float) <= kSharedBytes,
              "the epilogue's staging fits in the pipeline's buffers");

// A shared-memory tile of `chunks` 16-byte chunks per row: chunk c of row r is stored at chunk
// c ^ f(r), f(r) = (r / rows per 128 bytes) mod min(chunks, 8). 8 consecutive rows at one
// chunk then cover all 8 bank groups of a 128-byte line (k-major: 4 chunks, rows 2 to a line;
// mn-major: 16 chunks, a row per line).
struct SmemTile {
    Bf16 *p;
    int chunks;
    __device__ __forceinline__ Bf16 *at(int r, int col) const { // col: a multiple of 8
        const int per_line = chunks >= 8 ? 1 : 8 / chunks, span = chunks >= 8 ? 8 : chunks;
        return p + (int64_t(r) * chunks + ((col / 8) ^ (r / per_line % span))) * 8;
    }
};

// A row-major matrix p[i * ld + j], i < rows, j < cols; vec: 16-byte aligned rows (ld % 8 == 0).
struct Source {
    const Bf16 *p;
    int64_t ld;
    int rows, cols;
    __device__ __forceinline__ bool vec() const {
        return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0;
    }
};

// Stages source rows [i0, i0 + R) x columns [j0, j0 + C) into `tile` (R rows of C / 8 chunks).
template <int R, int C>
__device__ __forceinline__ void load_tile(const SmemTile &tile, const Source &s, bool vec, int i0, int j0) {
    constexpr int kRowChunks = C / 8;
    static_assert(R * kRowChunks % kThreads == 0, "every thread copies the same number of chunks");
    PMOE_UNROLL
    for (int q = 0; q < R * kRowChunks / kThreads; q++) {
        const int c = threadIdx.x + q * kThreads;
        const int r = c / kRowChunks, col = c % kRowChunks * 8, i = i0 + r, j = j0 + col;
        Bf16 *dst = tile.at(r, col);
        if (vec && i < s.rows && j + 8 <= s.cols) {
            cp_async_16(dst, s.p + int64_t(i) * s.ld + j);
        } else {
            uint32_t w[4] = {0, 0, 0, 0};
            PMOE_UNROLL
            for (int e = 0; e < 8; e++)
                if (i < s.rows && j + e < s.cols)
                    w[e / 2] |= uint32_t(__bfloat16_as_ushort(s.p[int64_t(i) * s.ld + j + e])) << (16 * (e % 2));
            *reinterpret_cast<uint4 *>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
        }
    }
}

// The four 8 x 8 matrices of the 16 (m or n) x 16 (k) operand block at (mn0, k0) of `tile`,
// stored k-major (rows are mn) or mn-major (rows are k, read with .trans). kAOrder: in the order
// of an A fragment (mn half fastest); else of two B fragments (k half fastest, then n + 8).
template <bool kKMajor, bool kAOrder>
__device__ __forceinline__ void load_fragments(uint32_t r[4], const SmemTile &tile, int mn0, int k0,
                                               int lane) {
    const int i = lane / 8, j = lane % 8;
    const int mn = mn0 + 8 * (kAOrder ? i % 2 : i / 2), k = k0 + 8 * (kAOrder ? i / 2 : i % 2);
    ldmatrix_x4<!kKMajor>(r, kKMajor ? tile.at(mn + j, k) : tile.at(k + j, mn));
}

// 16 bytes of O at dst from kPer floats v, plus beta * dst (beta != 0), or fewer elements.
template <typename O, int kPer>
__device__ __forceinline__ void store_chunk(O *dst, const float *v, int count, bool vec, float beta) {
    if (vec && count == kPer) {
        alignas(16) O out[kPer];
        if (beta != 0.0f) *reinterpret_cast<uint4 *>(out) = *reinterpret_cast<const uint4 *>(dst);
        PMOE_UNROLL
        for (int e = 0; e < kPer; e++)
            out[e] = from_float<O>(beta == 0.0f ? v[e] : v[e] + beta * to_float(out[e]));
        *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(out);
    } else {
        for (int e = 0; e < count; e++)
            dst[e] = from_float<O>(beta == 0.0f ? v[e] : v[e] + beta * to_float(dst[e]));
    }
}

// kMode: nn c[rows_g, n] = alpha * a[rows_g, k] * W_g[k, n] + beta * c; nt ... * W_g[n, k]^T ...;
// tn out[g][k, n] = alpha * a[rows_g, k]^T * b[rows_g, n] + beta * out[g]. matrices: W_g (nn, nt)
// or out[g] (tn); c and out[g] of O. The grouped entry points pass alpha 1 (and beta 0 for nn, nt);
// pmoe_gemm_bf16 runs here as one group (dense_tc).
template <int kMode, typename O>
__global__ void __launch_bounds__(kThreads)
grouped_gemm_tc_kernel(int groups, const int32_t *offsets, int32_t *tile_start, int k, int n,
                       const Bf16 *a, const Bf16 *b, const void *const *matrices, O *c, float alpha,
                       float beta) {
    constexpr bool kAKMajor = kMode != kModeTN, kBKMajor = kMode == kModeNT;
    PMOE_DYNAMIC_SHARED(Bf16, smem);
    // Two slots: thread 0 writes slot (round % 2) again only two rounds later, after a barrier
    // that every thread reaches once it has read the slot (a skipped tile has no other barrier).
    __shared__ int next_tile[2];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = kWM * (warp / (kBN / kWN)), wn = kWN * (warp % (kBN / kWN));
    const int total = tile_start[groups];
    int32_t *counter = tile_start + groups + 1;
    for (int round = 0;; round++) {
        if (threadIdx.x == 0) next_tile[round % 2] = atomicAdd(counter, 1);
        __syncthreads(); // also: the previous tile's epilogue is done with the shared memory
        const int tile = next_tile[round % 2];
        if (tile >= total) break;
        const GroupTile t = find_tile(tile, groups, tile_start);
        const int64_t r0 = offsets[t.g];
        const int rows = offsets[t.g + 1] - offsets[t.g];
        const void *matrix = matrices[t.g];
        // m: output rows (rows, or k for tn); depth: the summed dimension (k, or rows for tn)
        const int m = kMode == kModeTN ? k : rows, depth = kMode == kModeTN ? rows : k;
        const int steps = tiles(depth, kBK), tiles_m = tiles(m, kBM);
        if (!matrix && (kMode == kModeTN || steps > 0)) continue; // reported by group_tiles_kernel
        const int m0 = t.local % tiles_m * kBM, n0 = t.local / tiles_m * kBN;
        const Bf16 *w = static_cast<const Bf16 *>(matrix);
        const Source sa{a + r0 * k, k, rows, k};
        const Source sb = kMode == kModeNN   ? Source{w, n, k, n}
                          : kMode == kModeNT ? Source{w, k, n, k}
                                             : Source{b + r0 * n, n, rows, n};
        const bool vec_a = sa.vec(), vec_b = sb.vec();
        auto stage_a = [&](int s) { return SmemTile{smem + s * kStageElements, kAKMajor ? kBK / 8 : kBM / 8}; };
        auto stage_b = [&](int s) {
            return SmemTile{smem + s * kStageElements + kBM * kBK, kBKMajor ? kBK / 8 : kBN / 8};
        };
        auto load = [&](int step) {
            const int s = step % kStages, d0 = step * kBK;
            if (kAKMajor) load_tile<kBM, kBK>(stage_a(s), sa, vec_a, m0, d0);
            else load_tile<kBK, kBM>(stage_a(s), sa, vec_a, d0, m0);
            if (kBKMajor) load_tile<kBN, kBK>(stage_b(s), sb, vec_b, n0, d0);
            else load_tile<kBK, kBN>(stage_b(s), sb, vec_b, d0, n0);
        };
        // Warp-uniform: 16-row and 8-column slices wholly past the matrix's edge are skipped.
        auto live_m = [&](int mi) { return m0 + wm + 16 * mi < m; };
        auto live_n = [&](int nj) { return n0 + wn + 8 * nj < n; };
        float acc[kMI][kNJ][4] = {};
        for (int s = 0; s < kStages - 1; s++) {
            if (s < steps) load(s);
            cp_async_commit();
        }
        for (int s = 0; s < steps; s++) {
            cp_async_wait<kStages - 2>(); // this thread's copies of step s have landed
            __syncthreads();              // everyone's have, and step s - 1's buffer is free
            if (s + kStages - 1 < steps) load(s + kStages - 1);
            cp_async_commit();
            const SmemTile ta = stage_a(s % kStages), tb = stage_b(s % kStages);
            PMOE_UNROLL
            for (int kk = 0; kk < kBK; kk += 16) {
                uint32_t af[kMI][4] = {}, bf[kNJ][2] = {};
                PMOE_UNROLL
                for (int mi = 0; mi < kMI; mi++)
                    if (live_m(mi)) load_fragments<kAKMajor, true>(af[mi], ta, wm + 16 * mi, kk, lane);
                PMOE_UNROLL
                for (int nj = 0; nj < kNJ; nj += 2)
                    if (live_n(nj)) {
                        uint32_t r[4];
                        load_fragments<kBKMajor, false>(r, tb, wn + 8 * nj, kk, lane);
                        bf[nj][0] = r[0];
                        bf[nj][1] = r[1];
                        bf[nj + 1][0] = r[2];
                        bf[nj + 1][1] = r[3];
                    }
                PMOE_UNROLL
                for (int mi = 0; mi < kMI; mi++)
                    PMOE_UNROLL
                    for (int nj = 0; nj < kNJ; nj++)
                        if (live_m(mi) && live_n(nj))
                            mma_bf16_16816(acc[mi][nj], af[mi], bf[nj], acc[mi][nj]);
            }
        }
        cp_async_wait<0>(); // only empty groups remain; no copy may land in the staging below
        __syncthreads();    // every warp is done reading the pipeline's buffers
        // Epilogue: each warp stages 16 rows of its quarter at a time as f32 in shared memory,
        // then writes them as 16-byte chunks (rounded once, with beta * out added).
        constexpr int kPer = 16 / sizeof(O), kRowChunks = kWN / kPer;
        O *out = kMode == kModeTN ? static_cast<O *>(const_cast<void *>(matrix)) : c + r0 * n;
        const bool vec_out = reinterpret_cast<uintptr_t>(out) % 16 == 0 && n % kPer == 0;
        float *staging = reinterpret_cast<float *>(smem) + warp * 16 * kEpiloguePitch;
        const int g4 = lane / 4, t4 = lane % 4;
        PMOE_UNROLL
        for (int mi = 0; mi < kMI; mi++) {
            if (!live_m(mi)) continue;
            PMOE_UNROLL
            for (int nj = 0; nj < kNJ; nj++)
                PMOE_UNROLL
                for (int i = 0; i < 4; i++)
                    staging[(g4 + 8 * (i / 2)) * kEpiloguePitch + 8 * nj + 2 * t4 + i % 2] = alpha * acc[mi][nj][i];
            __syncwarp();
            for (int q = lane; q < 16 * kRowChunks; q += 32) {
                const int row = q / kRowChunks, col = q % kRowChunks * kPer;
                const int i = m0 + wm + 16 * mi + row, j = n0 + wn + col;
                if (i < m && j < n)
                    store_chunk<O, kPer>(out + int64_t(i) * n + j, staging + row * kEpiloguePitch + col,
                                         n - j < kPer ? n - j : kPer, vec_out, beta);
            }
            __syncwarp();
        }
    }
}
} // namespace tc

// Words the errors that group_tiles_kernel recorded.
int grouped_errors(const InputChecks &checks, int mode, const int32_t *offsets, const char *data_name) {
    if (checks.first_bad(kCheckFirstOffset) >= 0)
        return fail_offsets_start(read_element(offsets, 0));
    if (const int64_t g = checks.first_bad(kCheckDecreasing); g >= 0)
        return fail_offsets_decrease(g, read_element(offsets, g), read_element(offsets, g - 1));
    if (const int64_t which = checks.first_bad(kCheckNullData); which >= 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "%s must not be NULL", which == 0 ? "a" : data_name);
    if (const int64_t g = checks.first_bad(kCheckNullMatrix); g >= 0)
        return mode == kModeTN
                   ? fail_null_out(g)
                   : fail_null_weight(g, read_element(offsets, g + 1) - read_element(offsets, g));
    if (const int64_t g = checks.first_bad(kCheckMisaligned); g >= 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "weights[%lld] must be 16-byte aligned", (long long)g);
    return PMOE_OK;
}

// One grouped GEMM: checks, the tile list (tile_m x tile_n tiles), then run(tile_start) launches
// the product; matrices are the weights (nn, nt) or the outputs (tn), data is c or b.
template <typename Run>
int grouped_launch(int mode, bool aligned, int tile_m, int tile_n, int32_t groups,
                   const int32_t *offsets, int32_t k, int32_t n, const void *a, const void *data,
                   const void *const *matrices, void *stream, Run &&run) {
    if (mode == kModeTN && int64_t(k) * n == 0) return PMOE_OK; // every out[g] is empty
    if (groups > 0) PMOE_CHECK(require_non_null(mode == kModeTN ? "out" : "weights", matrices));
    DeviceBuffer tile_start;
    PMOE_CHECK(tile_start.allocate(sizeof(int32_t) * (size_t(groups) + 2), stream, "group tiles"));
    InputChecks checks;
    PMOE_CHECK(checks.begin(stream));
    PMOE_CHECK(launch("grouped_gemm_tiles", group_tiles_kernel, 1, kThreads, 0, stream, mode, aligned,
                      groups, offsets, k, n, tile_m, tile_n, matrices, a, data,
                      tile_start.as<int32_t>(), checks.device()));
    if (groups > 0) PMOE_CHECK(run(tile_start.as<int32_t>()));
    PMOE_CHECK(checks.finish(stream));
    return grouped_errors(checks, mode, offsets, mode == kModeTN ? "b" : "c");
}

// The grouped GEMMs on the SIMT tiles, operands of T, c or out[g] of O.
template <typename T, typename O>
int grouped(int mode, int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const T *a,
            const T *b, const void *const *matrices, O *c, float beta, void *stream) {
    const void *data = mode == kModeTN ? static_cast<const void *>(b) : c;
    return grouped_launch(mode, false, BM, BN, groups, offsets, k, n, a, data, matrices, stream,
                          [&](const int32_t *tile_start) {
        return launch("grouped_gemm", grouped_gemm_kernel<T, O>, unsigned(2 * multiprocessors()),
                      kThreads, 0, stream, mode, groups, offsets, tile_start, k, n, a, b, matrices, c, beta);
    });
}

// Blocks of `kernel` that fit on one multiprocessor with `smem` bytes of dynamic shared memory
// (the harness: 2, so that its few "multiprocessors" still run several blocks over the tiles).
template <typename... P> int resident_blocks(void (*kernel)(P...), int threads, size_t smem) {
#ifdef PMOE_HOST_EXEC
    (void)kernel, (void)threads, (void)smem;
    return 2;
#else
    int blocks = 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, smem) != cudaSuccess)
        return 1; // the launch reports what is wrong
    return blocks < 1 ? 1 : blocks;
#endif
}

// tc::grouped_gemm_tc_kernel over a tile list in device memory, c or out[g] of O, launched as
// "grouped_gemm_<mode>_bf16" for the grouped entry points and "gemm_<mode>_bf16" for
// pmoe_gemm_bf16 (the names the harness counts launches by). The persistent grid is capped at
// max_tiles, where the host knows the tile count.
template <int kMode, typename O>
int launch_tc(bool grouped, int32_t groups, const int32_t *offsets, int32_t *tile_start,
              int32_t k, int32_t n, const void *a, const void *b, const void *const *matrices, void *c,
              float alpha, float beta, int64_t max_tiles, void *stream) {
    static const char *const kNames[2][3] = {{"gemm_nn_bf16", "gemm_nt_bf16", "gemm_tn_bf16"},
                                             {"grouped_gemm_nn_bf16", "grouped_gemm_nt_bf16", "grouped_gemm_tn_bf16"}};
    const char *name = kNames[grouped][kMode];
    const auto kernel = tc::grouped_gemm_tc_kernel<kMode, O>;
    const int64_t blocks = resident_blocks(kernel, tc::kThreads, tc::kSharedBytes) * int64_t(multiprocessors());
    return launch(name, kernel, unsigned(blocks < max_tiles ? blocks : max_tiles), tc::kThreads,
                  tc::kSharedBytes, stream, groups, offsets, tile_start, k, n, static_cast<const Bf16 *>(a),
                  static_cast<const Bf16 *>(b), matrices, static_cast<O *>(c), alpha, beta);
}

// The bf16 grouped GEMMs on tensor cores, c or out[g] of O; `aligned`: weights[g] must be
// 16-byte aligned (nn's contract).
template <int kMode, typename O>
int grouped_tc(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const void *a,
               const void *b, const void *const *matrices, void *c, float beta, bool aligned,
               void *stream) {
    return grouped_launch(kMode, aligned, tc::kBM, tc::kBN, groups, offsets, k, n, a,
                          kMode == kModeTN ? b : c, matrices, stream, [&](int32_t *tile_start) {
        return launch_tc<kMode, O>(true, groups, offsets, tile_start, k, n, a, b, matrices, c,
                                   1.0f, beta, INT64_MAX, stream);
    });
}

// The tile list of a GEMM run as one group: the kernel reads offsets, the matrix pointer and the
// list from device memory, and a kernel parameter puts them there without a host copy or wait.
struct OneGroup {
    const void *matrix;
    int32_t offsets[2];    // 0, rows
    int32_t tile_start[3]; // 0, tiles, the kernel's tile counter (0)
};

__global__ void store_one_group_kernel(OneGroup group, OneGroup *out) { *out = group; }

// A dense bf16 GEMM as the one group of rows [0, rows) of tc::grouped_gemm_tc_kernel: matrix is
// the weight (nn, nt) or the output (tn). Its tiles are the grouped form's, so it is as
// deterministic.
template <int kMode, typename O>
int dense_tc(int32_t rows, int32_t k, int32_t n, float alpha, const void *a, const void *b,
             const void *matrix, float beta, void *c, void *stream) {
    const int tiles = group_tile_count(kMode, rows, k, n, tc::kBM, tc::kBN);
    DeviceBuffer list;
    PMOE_CHECK(list.allocate(sizeof(OneGroup), stream, "the GEMM's tile list"));
    OneGroup *group = list.as<OneGroup>();
    PMOE_CHECK(launch("gemm_tile_list", store_one_group_kernel, 1, 1, 0, stream,
                      OneGroup{matrix, {0, rows}, {0, tiles, 0}}, group));
    return launch_tc<kMode, O>(false, 1, group->offsets, group->tile_start, k, n, a, b, &group->matrix, c,
                               alpha, beta, tiles, stream);
}

// C = alpha * op(A) * op(B) + beta * C on the SIMT tiles, operands of T, C of O (checked).
template <typename T, typename O>
int dense(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha, const T *a,
          int32_t lda, const T *b, int32_t ldb, float beta, O *c, int32_t ldc, void *stream) {
    if (int64_t(m) * n == 0) return PMOE_OK;
    if (ceil_div(m, BM) > 65535)
        return fail(PMOE_ERR_UNSUPPORTED, "m = %d: the CUDA GEMM supports at most %d rows", m,
                    65535 * BM);
    const View<T> va = trans_a ? View<T>{a, 1, lda} : View<T>{a, lda, 1};
    const View<T> vb = trans_b ? View<T>{b, 1, ldb} : View<T>{b, ldb, 1};
    return launch("gemm", gemm_kernel<T, O>, dim3(unsigned(ceil_div(n, BN)), unsigned(ceil_div(m, BM))),
                  kThreads, 0, stream, va, vb, c, int64_t(ldc), m, n, k, alpha, beta);
}

// pmoe_gemm_bf16, C of O: on tensor cores where the operands lie as one group's of the grouped
// kernel (no row padding; op(A) op(B) = A B, A B^T or A^T B: every linear layer's forward, input
// and weight gradients), else (A^T B^T, padded rows) on the SIMT tiles.
template <typename O>
int dense_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
               const void *a, int32_t lda, const void *b, int32_t ldb, float beta, O *c, int32_t ldc,
               void *stream) {
    if (int64_t(m) * n == 0) return PMOE_OK;
    if (ldc == n && !trans_a && lda == k && ldb == (trans_b ? k : n))
        return trans_b ? dense_tc<kModeNT, O>(m, k, n, alpha, a, nullptr, b, beta, c, stream)
                       : dense_tc<kModeNN, O>(m, k, n, alpha, a, nullptr, b, beta, c, stream);
    if (ldc == n && trans_a && !trans_b && lda == m && ldb == n) // C[m, n] = tn's out over k rows
        return dense_tc<kModeTN, O>(k, m, n, alpha, a, b, c, beta, nullptr, stream);
    return dense(trans_a, trans_b, m, n, k, alpha, static_cast<const Bf16 *>(a), lda,
                 static_cast<const Bf16 *>(b), ldb, beta, c, ldc, stream);
}

} // namespace
} // namespace cuda
} // namespace pmoe

namespace pmoe_impl {

int gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
         const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
         int32_t ldc, void *stream) {
    return guarded("pmoe_gemm", [&] {
        return dense(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream);
    });
}

int gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
              const void *a, int32_t lda, const void *b, int32_t ldb, float beta, int32_t c_dtype,
              void *c, int32_t ldc, void *stream) {
    return guarded("pmoe_gemm_bf16", [&] {
        return with_device_dtype(c_dtype, [&](auto t) {
            using O = decltype(t);
            return dense_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                              static_cast<O *>(c), ldc, stream);
        });
    });
}

int grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *const *weights, float *c, void *stream) {
    return guarded("pmoe_grouped_gemm_nn", [&] {
        return grouped(kModeNN, groups, offsets, k, n, a, static_cast<const float *>(nullptr),
                       reinterpret_cast<const void *const *>(weights), c, 0.0f, stream);
    });
}

int grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *const *weights, float *c, void *stream) {
    return guarded("pmoe_grouped_gemm_nt", [&] {
        return grouped(kModeNT, groups, offsets, k, n, a, static_cast<const float *>(nullptr),
                       reinterpret_cast<const void *const *>(weights), c, 0.0f, stream);
    });
}

// bf16 a, weights and c, f32 accumulation on tensor cores; k and n multiples of 8, a, c and
// every weights[g] 16-byte aligned (panamoe.h).
int grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *stream) {
    return guarded("pmoe_grouped_gemm_nn_bf16", [&] {
        if (k % 8 != 0 || n % 8 != 0)
            return fail(PMOE_ERR_UNSUPPORTED,
                        "k = %d, n = %d: the tensor-core path needs multiples of 8", k, n);
        for (const auto &[name, p] : {std::pair<const char *, const void *>{"a", a}, {"c", c}})
            if (reinterpret_cast<uintptr_t>(p) % 16 != 0)
                return fail(PMOE_ERR_INVALID_ARGUMENT, "%s must be 16-byte aligned", name);
        return grouped_tc<kModeNN, Bf16>(groups, offsets, k, n, a, nullptr, weights, c, 0.0f, true,
                                         stream);
    });
}

int grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a,
                    const float *b, float beta, float *const *out, void *stream) {
    return guarded("pmoe_grouped_gemm_tn", [&] {
        return grouped(kModeTN, groups, offsets, k, n, a, b,
                       reinterpret_cast<const void *const *>(out), static_cast<float *>(nullptr),
                       beta, stream);
    });
}

// The bf16 nt and tn forms on tensor cores too, with no size or alignment requirement: chunks
// that are not aligned or not whole are staged element by element.
int grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *stream) {
    return guarded("pmoe_grouped_gemm_nt_bf16", [&] {
        return grouped_tc<kModeNT, Bf16>(groups, offsets, k, n, a, nullptr, weights, c, 0.0f, false,
                                         stream);
    });
}

int grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *b, float beta, int32_t out_dtype,
                         void *const *out, void *stream) {
    return guarded("pmoe_grouped_gemm_tn_bf16", [&] {
        const void *const *matrices = const_cast<const void *const *>(out);
        if (out_dtype == PMOE_DTYPE_BF16)
            return grouped_tc<kModeTN, Bf16>(groups, offsets, k, n, a, b, matrices, nullptr, beta,
                                             false, stream);
        return grouped_tc<kModeTN, float>(groups, offsets, k, n, a, b, matrices, nullptr, beta,
                                          false, stream);
    });
}

} // namespace pmoe_impl
