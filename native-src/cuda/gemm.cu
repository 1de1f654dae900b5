// GEMMs: pmoe_gemm and the grouped expert GEMMs (nn, nt, tn), f32 and bf16 (pmoe_gemm_bf16,
// the grouped _bf16 forms), all through one tiled shared-memory product on f32 values (bf16
// operands are widened as they are staged; a bf16 output is rounded once). The grouped GEMMs are one launch for all groups: a prologue lays the
// groups' output tiles end to end (tile_start, a block scan), and a persistent grid walks that
// list, finding each tile's group by binary search - no per-expert launches, no padding.
// Every output element is owned by one thread and accumulated over k in order, so results are
// deterministic. The f32 path is for parity with the CPU; pmoe_grouped_gemm_nn_bf16 runs the
// same tile list on tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulation).
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

__device__ __forceinline__ int tiles(int64_t n, int t) { return n <= 0 ? 0 : int((n + t - 1) / t); }

// One block: tile_start[g] = output tiles of the groups before g, tile_start[groups] = all; also
// checks offsets and pointers (16-byte aligned matrices if `aligned`). tn tiles cover out[g]
// even for an empty group (beta * out[g]).
__global__ void __launch_bounds__(kThreads)
group_tiles_kernel(int mode, bool aligned, int groups, const int32_t *offsets, int k, int n,
                   const void *const *matrices, const void *a, const void *data,
                   int32_t *tile_start, unsigned long long *checks) {
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
            count = mode == kModeTN ? tiles(k, BM) * tiles(n, BN) : tiles(rows, BM) * tiles(n, BN);
        }
        int32_t total = 0;
        const int32_t before = block_exclusive_scan(count, scratch, &total);
        if (g < groups) tile_start[g] = carry + before;
        carry += total;
    }
    if (threadIdx.x == 0) tile_start[groups] = carry;
}

struct GroupTile {
    int g, m0, n0; // group, and the tile's first row (within the group) and column
};

// Tile `tile` of the list: the last group whose tiles start at or before it (empty groups share
// their start with the next one).
__device__ __forceinline__ GroupTile find_tile(int tile, int groups, const int32_t *tile_start,
                                               int tiles_n) {
    int lo = 0, hi = groups - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (tile_start[mid] <= tile) lo = mid; else hi = mid - 1;
    }
    const int local = tile - tile_start[lo];
    return GroupTile{lo, (local / tiles_n) * BM, (local % tiles_n) * BN};
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
        const GroupTile t = find_tile(tile, groups, tile_start, tiles_n);
        const int64_t r0 = offsets[t.g];
        const int rows = offsets[t.g + 1] - offsets[t.g];
        const void *m = matrices[t.g];
        if (!m) continue; // reported by group_tiles_kernel
        if (mode == kModeTN) {
            gemm_tile(stage, View<T>{a + r0 * k, 1, k}, View<T>{b + r0 * n, n, 1},
                      static_cast<O *>(const_cast<void *>(m)), n, k, n, rows, t.m0, t.n0, 1.0f, beta);
        } else {
            const T *w = static_cast<const T *>(m);
            gemm_tile(stage, View<T>{a + r0 * k, k, 1},
                      mode == kModeNN ? View<T>{w, n, 1} : View<T>{w, 1, k}, c + r0 * n, n, rows,
                      n, k, t.m0, t.n0, 1.0f, 0.0f);
        }
    }
}

// ---- tensor cores: c[rows_g, n] = a[rows_g, k] * W_g[k, n], bf16 storage ----
// A block (4 warps, each a 32 x 32 quarter) computes a 64 x 64 tile of the same list as the f32
// path. Depth steps of 32 are staged in shared memory by cp.async, two stages deep; A fragments
// come from ldmatrix, B fragments from ldmatrix.trans on the row-major W. k and n are multiples
// of 8, so every 16-byte chunk is either inside the matrices or outside (then zero-filled).
constexpr int kTcThreads = 128, TBK = 32, kPad = 8; // padding staggers ldmatrix's rows over banks

__device__ void load_stage(Bf16 (*As)[TBK + kPad], Bf16 (*Bs)[BN + kPad], const Bf16 *a,
                           const Bf16 *w, int rows, int K, int N, int m0, int n0, int k0) {
    for (int c = threadIdx.x; c < BM * TBK / 8; c += kTcThreads) {
        const int r = c / (TBK / 8), kc = c % (TBK / 8) * 8;
        if (m0 + r < rows && k0 + kc < K)
            cp_async_16(&As[r][kc], a + int64_t(m0 + r) * K + k0 + kc);
        else
            *reinterpret_cast<uint4 *>(&As[r][kc]) = make_uint4(0, 0, 0, 0);
    }
    for (int c = threadIdx.x; c < TBK * BN / 8; c += kTcThreads) {
        const int kr = c / (BN / 8), nc = c % (BN / 8) * 8;
        if (k0 + kr < K && n0 + nc < N)
            cp_async_16(&Bs[kr][nc], w + int64_t(k0 + kr) * N + n0 + nc);
        else
            *reinterpret_cast<uint4 *>(&Bs[kr][nc]) = make_uint4(0, 0, 0, 0);
    }
    cp_async_commit();
}

__global__ void __launch_bounds__(kTcThreads)
grouped_gemm_bf16_nn_kernel(int groups, const int32_t *offsets, const int32_t *tile_start, int k,
                            int n, const Bf16 *a, const Bf16 *const *weights, Bf16 *c) {
    __shared__ __align__(16) Bf16 As[2][BM][TBK + kPad];
    __shared__ __align__(16) Bf16 Bs[2][TBK][BN + kPad];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = 32 * (warp / 2), wn = 32 * (warp % 2);
    const int total = tile_start[groups], tiles_n = tiles(n, BN), steps = tiles(k, TBK);
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        const GroupTile t = find_tile(tile, groups, tile_start, tiles_n);
        const int64_t r0 = offsets[t.g];
        const int rows = offsets[t.g + 1] - offsets[t.g];
        const Bf16 *ag = a + r0 * k, *w = weights[t.g];
        if (!w || reinterpret_cast<uintptr_t>(w) % 16 != 0) continue; // reported
        float acc[2][4][4] = {};
        if (steps > 0) load_stage(As[0], Bs[0], ag, w, rows, k, n, t.m0, t.n0, 0);
        for (int s = 0; s < steps; s++) {
            if (s + 1 < steps) {
                load_stage(As[(s + 1) & 1], Bs[(s + 1) & 1], ag, w, rows, k, n, t.m0, t.n0, (s + 1) * TBK);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            const int st = s & 1;
            for (int kk = 0; kk < TBK; kk += 16) {
                uint32_t af[2][4], bf[4][2];
                for (int mi = 0; mi < 2; mi++)
                    ldmatrix_x4<false>(af[mi], &As[st][wm + 16 * mi + lane % 16][kk + 8 * (lane / 16)]);
                for (int nj = 0; nj < 4; nj += 2) {
                    uint32_t r[4];
                    ldmatrix_x4<true>(r, &Bs[st][kk + lane % 16][wn + 8 * nj + 8 * (lane / 16)]);
                    bf[nj][0] = r[0];
                    bf[nj][1] = r[1];
                    bf[nj + 1][0] = r[2];
                    bf[nj + 1][1] = r[3];
                }
                for (int mi = 0; mi < 2; mi++)
                    for (int nj = 0; nj < 4; nj++) mma_bf16_16816(acc[mi][nj], af[mi], bf[nj], acc[mi][nj]);
            }
            __syncthreads();
        }
        const int g4 = lane / 4, t4 = lane % 4;
        for (int mi = 0; mi < 2; mi++)
            for (int nj = 0; nj < 4; nj++)
                for (int i = 0; i < 4; i++) {
                    const int row = t.m0 + wm + 16 * mi + g4 + 8 * (i / 2);
                    const int col = t.n0 + wn + 8 * nj + 2 * t4 + i % 2;
                    if (row < rows && col < n) c[(r0 + row) * n + col] = __float2bfloat16_rn(acc[mi][nj][i]);
                }
    }
}

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

// The grouped GEMMs on the SIMT tiles: matrices are the weights (nn, nt) or the outputs (tn);
// data is c or b. Operands of T, c or out[g] of O.
template <typename T, typename O>
int grouped(int mode, int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const T *a,
            const T *b, const void *const *matrices, O *c, float beta, void *stream) {
    const char *matrices_name = mode == kModeTN ? "out" : "weights";
    const char *data_name = mode == kModeTN ? "b" : "c";
    if (mode == kModeTN && int64_t(k) * n == 0) return PMOE_OK; // every out[g] is empty
    if (groups > 0) PMOE_CHECK(require_non_null(matrices_name, matrices));
    DeviceBuffer tile_start;
    PMOE_CHECK(tile_start.allocate(sizeof(int32_t) * (size_t(groups) + 1), stream, "group tiles"));
    InputChecks checks;
    PMOE_CHECK(checks.begin(stream));
    const void *data = mode == kModeTN ? static_cast<const void *>(b) : c;
    PMOE_CHECK(launch("grouped_gemm_tiles", group_tiles_kernel, 1, kThreads, 0, stream, mode, false,
                      groups, offsets, k, n, matrices, static_cast<const void *>(a), data,
                      tile_start.as<int32_t>(), checks.device()));
    if (groups > 0)
        PMOE_CHECK(launch("grouped_gemm", grouped_gemm_kernel<T, O>, unsigned(2 * multiprocessors()),
                          kThreads, 0, stream, mode, groups, offsets,
                          tile_start.as<const int32_t>(), k, n, a, b, matrices, c, beta));
    PMOE_CHECK(checks.finish(stream));
    return grouped_errors(checks, mode, offsets, data_name);
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
        const Bf16 *a16 = static_cast<const Bf16 *>(a), *b16 = static_cast<const Bf16 *>(b);
        if (c_dtype == PMOE_DTYPE_BF16)
            return dense(trans_a, trans_b, m, n, k, alpha, a16, lda, b16, ldb, beta,
                         static_cast<Bf16 *>(c), ldc, stream);
        return dense(trans_a, trans_b, m, n, k, alpha, a16, lda, b16, ldb, beta,
                     static_cast<float *>(c), ldc, stream);
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
        if (groups > 0) PMOE_CHECK(require_non_null("weights", weights));
        DeviceBuffer tile_start;
        PMOE_CHECK(tile_start.allocate(sizeof(int32_t) * (size_t(groups) + 1), stream, "group tiles"));
        InputChecks checks;
        PMOE_CHECK(checks.begin(stream));
        PMOE_CHECK(launch("grouped_gemm_tiles", group_tiles_kernel, 1, kThreads, 0, stream, kModeNN,
                          true, groups, offsets, k, n, weights, a, static_cast<const void *>(c),
                          tile_start.as<int32_t>(), checks.device()));
        if (groups > 0)
            PMOE_CHECK(launch("grouped_gemm_bf16_nn", grouped_gemm_bf16_nn_kernel,
                              unsigned(2 * multiprocessors()), kTcThreads, 0, stream, groups, offsets,
                              tile_start.as<const int32_t>(), k, n, static_cast<const Bf16 *>(a),
                              reinterpret_cast<const Bf16 *const *>(weights), static_cast<Bf16 *>(c)));
        PMOE_CHECK(checks.finish(stream));
        return grouped_errors(checks, kModeNN, offsets, "c");
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

// The bf16 nt and tn forms run the SIMT tiles (correct, not tuned; the tensor-core path is nn).
int grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *const *weights, void *c, void *stream) {
    return guarded("pmoe_grouped_gemm_nt_bf16", [&] {
        return grouped(kModeNT, groups, offsets, k, n, static_cast<const Bf16 *>(a),
                       static_cast<const Bf16 *>(nullptr), weights, static_cast<Bf16 *>(c), 0.0f,
                       stream);
    });
}

int grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                         const void *a, const void *b, float beta, int32_t out_dtype,
                         void *const *out, void *stream) {
    return guarded("pmoe_grouped_gemm_tn_bf16", [&] {
        const Bf16 *a16 = static_cast<const Bf16 *>(a), *b16 = static_cast<const Bf16 *>(b);
        const void *const *matrices = const_cast<const void *const *>(out);
        if (out_dtype == PMOE_DTYPE_BF16)
            return grouped(kModeTN, groups, offsets, k, n, a16, b16, matrices,
                           static_cast<Bf16 *>(nullptr), beta, stream);
        return grouped(kModeTN, groups, offsets, k, n, a16, b16, matrices,
                       static_cast<float *>(nullptr), beta, stream);
    });
}

} // namespace pmoe_impl
