// f32 GEMMs: pmoe_gemm and the grouped expert GEMMs (nn, nt, tn), all through one tiled
// shared-memory product. The grouped GEMMs are one launch for all groups: a prologue lays the
// groups' output tiles end to end (tile_start, a block scan), and a persistent grid walks that
// list, finding each tile's group by binary search - no per-expert launches, no padding.
// Every output element is owned by one thread and accumulated over k in order, so results are
// deterministic. This is the f32 parity path; the bf16 tensor-core path is still to come.
#include "common.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, kThreads = 256; // a thread owns a 4 x 4 sub-tile
constexpr int kModeNN = 0, kModeNT = 1, kModeTN = 2;
constexpr int kCheckFirstOffset = 0, kCheckDecreasing = 1, kCheckNullMatrix = 2, kCheckNullData = 3;

// Element (i, j) of a matrix at p[i * rs + j * cs]: transposes are just strides.
struct View {
    const float *p;
    int64_t rs, cs;
    __device__ __forceinline__ float at(int64_t i, int64_t j) const { return p[i * rs + j * cs]; }
};

// The 64 x 64 tile at (m0, n0) of C = alpha * A[M, K] * B[K, N] + beta * C (beta == 0: C is not
// read). Loads follow the contiguous dimension of each operand so that they coalesce.
__device__ void gemm_tile(View a, View b, float *c, int64_t ldc, int M, int N, int K, int m0,
                          int n0, float alpha, float beta) {
    __shared__ float As[BK][BM + 4];
    __shared__ float Bs[BK][BN + 4];
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
            float &out = c[int64_t(i) * ldc + j];
            out = beta == 0.0f ? alpha * acc[r][q] : alpha * acc[r][q] + beta * out;
        }
    }
}

__global__ void __launch_bounds__(kThreads)
gemm_kernel(View a, View b, float *c, int64_t ldc, int M, int N, int K, float alpha, float beta) {
    gemm_tile(a, b, c, ldc, M, N, K, blockIdx.y * BM, blockIdx.x * BN, alpha, beta);
}

__device__ __forceinline__ int tiles(int64_t n, int t) { return n <= 0 ? 0 : int((n + t - 1) / t); }

// One block: tile_start[g] = output tiles of the groups before g, tile_start[groups] = all; also
// checks offsets and pointers. tn tiles cover out[g] even for an empty group (beta * out[g]).
__global__ void __launch_bounds__(kThreads)
group_tiles_kernel(int mode, int groups, const int32_t *offsets, int k, int n,
                   const float *const *matrices, const float *a, const void *data,
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
            count = mode == kModeTN ? tiles(k, BM) * tiles(n, BN) : tiles(rows, BM) * tiles(n, BN);
        }
        int32_t total = 0;
        const int32_t before = block_exclusive_scan(count, scratch, &total);
        if (g < groups) tile_start[g] = carry + before;
        carry += total;
    }
    if (threadIdx.x == 0) tile_start[groups] = carry;
}

// Persistent grid over the tile list. nn: c[rows_g] = a[rows_g] * W_g; nt: ... * W_g^T;
// tn: out[g] = beta * out[g] + a[rows_g]^T * b[rows_g].
__global__ void __launch_bounds__(kThreads)
grouped_gemm_kernel(int mode, int groups, const int32_t *offsets, const int32_t *tile_start,
                    int k, int n, const float *a, const float *b, const float *const *matrices,
                    float *c, float beta) {
    const int total = tile_start[groups], tiles_n = tiles(n, BN);
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        int lo = 0, hi = groups - 1; // the last g with tile_start[g] <= tile
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (tile_start[mid] <= tile) lo = mid; else hi = mid - 1;
        }
        const int g = lo, local = tile - tile_start[g];
        const int m0 = (local / tiles_n) * BM, n0 = (local % tiles_n) * BN;
        const int64_t r0 = offsets[g];
        const int rows = offsets[g + 1] - offsets[g];
        const float *w = matrices[g];
        if (!w) continue; // reported by group_tiles_kernel
        if (mode == kModeTN)
            gemm_tile(View{a + r0 * k, 1, k}, View{b + r0 * n, n, 1}, const_cast<float *>(w), n, k,
                      n, rows, m0, n0, 1.0f, beta);
        else
            gemm_tile(View{a + r0 * k, k, 1},
                      mode == kModeNN ? View{w, n, 1} : View{w, 1, k}, c + r0 * n, n, rows, n, k,
                      m0, n0, 1.0f, 0.0f);
    }
}

int require_flag(const char *name, int32_t v) {
    return v == 0 || v == 1 ? PMOE_OK
                            : fail(PMOE_ERR_INVALID_ARGUMENT, "%s must be 0 or 1, got %d", name, v);
}

int require_stride(const char *name, int32_t ld, int64_t row_length, const char *what) {
    return ld >= row_length
               ? PMOE_OK
               : fail(PMOE_ERR_INVALID_ARGUMENT, "%s must be >= %lld (the row length of %s), got %d",
                      name, (long long)row_length, what, ld);
}

int require_data(const char *name, const void *p, int64_t elements) {
    return elements > 0 ? require_non_null(name, p) : PMOE_OK;
}

// The grouped GEMMs: matrices are the weights (nn, nt) or the outputs (tn); data is c or b.
int grouped(int mode, int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
            const float *a, const float *b, const float *const *matrices, float *c, float beta,
            void *stream) {
    PMOE_CHECK(require_non_negative("groups", groups));
    PMOE_CHECK(require_non_null("offsets", offsets));
    PMOE_CHECK(require_non_negative("k", k));
    PMOE_CHECK(require_non_negative("n", n));
    const char *matrices_name = mode == kModeTN ? "out" : "weights";
    const char *data_name = mode == kModeTN ? "b" : "c";
    if (mode == kModeTN && int64_t(k) * n == 0) return PMOE_OK; // every out[g] is empty
    if (groups > 0) PMOE_CHECK(require_non_null(matrices_name, matrices));
    DeviceBuffer tile_start;
    PMOE_CHECK(tile_start.allocate(sizeof(int32_t) * (size_t(groups) + 1), stream, "group tiles"));
    InputChecks checks;
    PMOE_CHECK(checks.begin(stream));
    const void *data = mode == kModeTN ? static_cast<const void *>(b) : c;
    PMOE_CHECK(launch("grouped_gemm_tiles", group_tiles_kernel, 1, kThreads, 0, stream, mode,
                      groups, offsets, k, n, matrices, a, data, tile_start.as<int32_t>(),
                      checks.device()));
    if (groups > 0)
        PMOE_CHECK(launch("grouped_gemm", grouped_gemm_kernel, unsigned(2 * multiprocessors()),
                          kThreads, 0, stream, mode, groups, offsets,
                          tile_start.as<const int32_t>(), k, n, a, b, matrices, c, beta));
    PMOE_CHECK(checks.finish(stream));
    if (checks.first_bad(kCheckFirstOffset) >= 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "offsets[0] must be 0, got %d",
                    read_element(offsets, 0));
    if (const int64_t g = checks.first_bad(kCheckDecreasing); g >= 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "offsets must not decrease: offsets[%lld] = %d is less than offsets[%lld] = %d",
                    (long long)g, read_element(offsets, g), (long long)(g - 1),
                    read_element(offsets, g - 1));
    if (const int64_t which = checks.first_bad(kCheckNullData); which >= 0)
        return fail(PMOE_ERR_INVALID_ARGUMENT, "%s must not be NULL", which == 0 ? "a" : data_name);
    if (const int64_t g = checks.first_bad(kCheckNullMatrix); g >= 0) {
        if (mode == kModeTN)
            return fail(PMOE_ERR_INVALID_ARGUMENT, "out[%lld] must not be NULL", (long long)g);
        return fail(PMOE_ERR_INVALID_ARGUMENT, "weights[%lld] must not be NULL (group %lld has %d rows)",
                    (long long)g, (long long)g, read_element(offsets, g + 1) - read_element(offsets, g));
    }
    return PMOE_OK;
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe;
using namespace pmoe::cuda;

extern "C" {

PMOE_API int pmoe_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k,
                       float alpha, const float *a, int32_t lda, const float *b, int32_t ldb,
                       float beta, float *c, int32_t ldc, void *stream) {
    return guarded("pmoe_gemm", [&] {
        PMOE_CHECK(require_flag("trans_a", trans_a));
        PMOE_CHECK(require_flag("trans_b", trans_b));
        PMOE_CHECK(require_non_negative("m", m));
        PMOE_CHECK(require_non_negative("n", n));
        PMOE_CHECK(require_non_negative("k", k));
        PMOE_CHECK(require_stride("lda", lda, trans_a ? m : k, "A"));
        PMOE_CHECK(require_stride("ldb", ldb, trans_b ? k : n, "B"));
        PMOE_CHECK(require_stride("ldc", ldc, n, "C"));
        PMOE_CHECK(require_data("a", a, int64_t(m) * k));
        PMOE_CHECK(require_data("b", b, int64_t(k) * n));
        PMOE_CHECK(require_data("c", c, int64_t(m) * n));
        if (int64_t(m) * n == 0) return PMOE_OK;
        if (ceil_div(m, BM) > 65535)
            return fail(PMOE_ERR_UNSUPPORTED, "m = %d: the CUDA GEMM supports at most %d rows", m,
                        65535 * BM);
        const View va = trans_a ? View{a, 1, lda} : View{a, lda, 1};
        const View vb = trans_b ? View{b, 1, ldb} : View{b, ldb, 1};
        return launch("gemm", gemm_kernel, dim3(unsigned(ceil_div(n, BN)), unsigned(ceil_div(m, BM))),
                      kThreads, 0, stream, va, vb, c, int64_t(ldc), m, n, k, alpha, beta);
    });
}

PMOE_API int pmoe_grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream) {
    return guarded("pmoe_grouped_gemm_nn", [&] {
        return grouped(kModeNN, groups, offsets, k, n, a, nullptr, weights, c, 0.0f, stream);
    });
}

PMOE_API int pmoe_grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *const *weights, float *c,
                                  void *stream) {
    return guarded("pmoe_grouped_gemm_nt", [&] {
        return grouped(kModeNT, groups, offsets, k, n, a, nullptr, weights, c, 0.0f, stream);
    });
}

PMOE_API int pmoe_grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n,
                                  const float *a, const float *b, float beta, float *const *out,
                                  void *stream) {
    return guarded("pmoe_grouped_gemm_tn", [&] {
        return grouped(kModeTN, groups, offsets, k, n, a, b, const_cast<const float *const *>(out),
                       nullptr, beta, stream);
    });
}

} // extern "C"
