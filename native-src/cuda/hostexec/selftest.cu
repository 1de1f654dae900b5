// Self-test of the host-execution harness and of the project's primitives, built into
// libpanamoe_cuda_host.so only (not part of panamoe.h): the scan/reduce primitives against
// sequential sums, the warp collectives' documented edge cases, the execution-model guarantees
// the kernels rely on (early return leaves barriers, shared memory is poisoned per block,
// deadlocks and misuse are reported, not hung), and the hardware wrappers of hw.cuh composed
// into a bf16 tensor-core tile product checked against exact integer arithmetic.
//
//   int pmoe_hostexec_selftest(int32_t thread_mode, char *report, int64_t capacity)
// runs every check with fibers (thread_mode 0) or OS threads (1), writes one line per check
// ("ok name" / "FAIL name: why") and returns the number of failures.
#include <cstdio>
#include <string>
#include <vector>

#include "../common.cuh"
#include "../hw.cuh"

namespace pmoe {
namespace cuda {
namespace {

constexpr int32_t kPoisonInt = int32_t(pmoe_host::kPoison);

struct Report {
    std::string text;
    int failures = 0;
    void check(const char *name, bool ok, const std::string &why = "") {
        text += ok ? std::string("ok ") + name + "\n" : std::string("FAIL ") + name + ": " + why + "\n";
        failures += !ok;
    }
};

// out[3 * i .. 3 * i + 2] = exclusive scan, block sum, block max of v[i] = (7 i + 3) % 11 - 5.
__global__ void scan_reduce_kernel(int32_t *out) {
    __shared__ int32_t scratch[32];
    const int i = threadIdx.x, v = (7 * i + 3) % 11 - 5;
    int32_t total = 0;
    const int32_t before = block_exclusive_scan(v, scratch, &total);
    const int32_t sum = block_reduce(v, Sum(), scratch);
    const int32_t max = block_reduce(v, Max(), scratch);
    out[3 * i] = before;
    out[3 * i + 1] = sum == total ? sum : -999999;
    out[3 * i + 2] = max;
}

void check_scan_reduce(Report &r) {
    for (int threads : {32, 96, 256, 1024}) {
        std::vector<int32_t> out(3 * threads, 0);
        const bool launched = launch("scan_reduce", scan_reduce_kernel, 1, threads, 0, nullptr, out.data()) == PMOE_OK;
        int32_t before = 0, sum = 0, max = -100;
        for (int i = 0; i < threads; i++) {
            const int v = (7 * i + 3) % 11 - 5;
            sum += v;
            max = v > max ? v : max;
        }
        bool ok = launched;
        for (int i = 0; i < threads && ok; i++) {
            ok = out[3 * i] == before && out[3 * i + 1] == sum && out[3 * i + 2] == max;
            before += (7 * i + 3) % 11 - 5;
        }
        r.check(("block scan and reduce, " + std::to_string(threads) + " threads").c_str(), ok,
                launched ? "differs from the sequential sums" : pmoe_host::last_error());
    }
}

// Per lane: inclusive scan, butterfly sum, shuffles at the width edges, ballot, match_any,
// __reduce_add_sync.
__global__ void warp_kernel(int32_t *out) {
    const int lane = threadIdx.x;
    int32_t *o = out + 8 * lane;
    o[0] = warp_inclusive_scan(lane + 1);
    o[1] = warp_reduce(lane * lane, Sum());
    o[2] = __shfl_down_sync(kFullMask, lane, 3, 16); // lanes 13..15 and 29..31 keep their own
    o[3] = __shfl_xor_sync(kFullMask, lane, 5, 8);   // lane ^ 5 stays inside its 8-lane segment
    o[4] = __shfl_up_sync(kFullMask, lane, 2);
    o[5] = int32_t(__ballot_sync(kFullMask, lane % 3 == 0));
    o[6] = int32_t(__match_any_sync(kFullMask, lane / 4 % 2));
    o[7] = __reduce_add_sync(kFullMask, lane);
}

void check_warp(Report &r) {
    std::vector<int32_t> out(8 * 32, 0);
    const bool launched = launch("warp", warp_kernel, 1, 32, 0, nullptr, out.data()) == PMOE_OK;
    bool ok = launched;
    unsigned ballot = 0, even_groups = 0;
    for (int l = 0; l < 32; l++) {
        if (l % 3 == 0) ballot |= 1u << l;
        if (l / 4 % 2 == 0) even_groups |= 1u << l;
    }
    for (int l = 0; l < 32 && ok; l++) {
        const int32_t *o = out.data() + 8 * l;
        ok = o[0] == (l + 1) * (l + 2) / 2 && o[1] == 10416 && o[2] == (l % 16 + 3 < 16 ? l + 3 : l) &&
             o[3] == (l ^ 5) && o[4] == (l >= 2 ? l - 2 : l) && unsigned(o[5]) == ballot &&
             unsigned(o[6]) == (l / 4 % 2 == 0 ? even_groups : ~even_groups) && o[7] == 496;
        if (!ok) r.check("warp collectives", false, "lane " + std::to_string(l) + " is wrong");
    }
    if (ok || !launched) r.check("warp collectives", ok, pmoe_host::last_error());
}

// A third of the threads return at once; the others pass three barriers, each round reading
// the value of the next live thread.
__device__ __host__ inline int next_live(int i) {
    int from = (i + 1) % 128;
    while (from % 3 == 0) from = (from + 1) % 128;
    return from;
}

__global__ void early_return_kernel(int32_t *out) {
    __shared__ int32_t value[128];
    const int i = threadIdx.x;
    if (i % 3 == 0) return;
    int32_t v = i;
    for (int round = 0; round < 3; round++) {
        value[i] = v;
        __syncthreads();
        v = value[next_live(i)] + 1;
        __syncthreads();
    }
    out[i] = v;
}

void check_early_return(Report &r) {
    std::vector<int32_t> out(128, -1), v(128);
    const bool launched = launch("early_return", early_return_kernel, 1, 128, 0, nullptr, out.data()) == PMOE_OK;
    for (int i = 0; i < 128; i++) v[i] = i;
    for (int round = 0; round < 3; round++) {
        const std::vector<int32_t> value = v;
        for (int i = 0; i < 128; i++)
            if (i % 3 != 0) v[i] = value[next_live(i)] + 1;
    }
    for (int i = 0; i < 128; i += 3) v[i] = -1;
    r.check("a thread that returns early leaves the barriers", launched && out == v, pmoe_host::last_error());
}

// Lane 0 waits at a warp barrier that lanes 1..31 never reach: they wait at __syncthreads.
__global__ void deadlock_kernel() {
    if (threadIdx.x == 0)
        __syncwarp();
    else
        __syncthreads();
}

// A lane passes a mask without itself.
__global__ void bad_mask_kernel() { __syncwarp(threadIdx.x == 5 ? 0x3u : kFullMask); }

void check_faults(Report &r) {
    bool failed = launch("deadlock", deadlock_kernel, 1, 64, 0, nullptr) != PMOE_OK;
    r.check("a deadlock is reported, not hung", failed && pmoe_host::last_error().find("deadlock") != std::string::npos,
            pmoe_host::last_error());
    failed = launch("bad_mask", bad_mask_kernel, 1, 32, 0, nullptr) != PMOE_OK;
    r.check("a lane outside its own mask is reported",
            failed && pmoe_host::last_error().find("does not include it") != std::string::npos, pmoe_host::last_error());
    failed = launch("too_many_threads", deadlock_kernel, 1, 2048, 0, nullptr) != PMOE_OK;
    r.check("an invalid block size is reported",
            failed && pmoe_host::last_error().find("invalid block") != std::string::npos, pmoe_host::last_error());
}

// Each block reads its static and dynamic shared memory before writing it, then writes it.
__global__ void poison_kernel(int32_t *out) {
    __shared__ int32_t fixed[64];
    PMOE_DYNAMIC_SHARED(int32_t, dynamic);
    const int i = threadIdx.x;
    out[blockIdx.x * 128 + i] = fixed[i];
    out[blockIdx.x * 128 + 64 + i] = dynamic[i];
    __syncthreads();
    fixed[i] = 42;
    dynamic[i] = 43;
}

// Thread 0 reads a neighbour's slot without a barrier in between: with fibers it runs first
// and sees the poison, which is how a missing __syncthreads shows in the tests.
__global__ void missing_barrier_kernel(int32_t *out) {
    __shared__ int32_t slot[32];
    slot[threadIdx.x] = int32_t(threadIdx.x);
    out[threadIdx.x] = slot[(threadIdx.x + 1) % 32];
}

void check_shared(Report &r, bool threads) {
    std::vector<int32_t> out(2 * 128, 0);
    const bool launched = launch("poison", poison_kernel, 2, 64, 64 * sizeof(int32_t), nullptr, out.data()) == PMOE_OK;
    bool ok = launched;
    for (int v : out) ok = ok && v == kPoisonInt;
    r.check("static and dynamic shared memory are poisoned before every block", ok, pmoe_host::last_error());
    if (threads) return; // a data race by design: only the fiber order is defined
    launch("missing_barrier", missing_barrier_kernel, 1, 32, 0, nullptr, out.data());
    r.check("a read before the writer's barrier sees the poison", out[0] == kPoisonInt && out[31] == 0,
            "thread 0 read " + std::to_string(out[0]));
}

__global__ void atomics_kernel(int32_t *count, float *sum, unsigned long long *min) {
    atomicAdd(count, 1);
    atomicAdd(sum, 0.5f);
    atomicMin(min, (unsigned long long)(1000 - threadIdx.x - blockIdx.x));
}

void check_atomics(Report &r) {
    int32_t count = 0;
    float sum = 0;
    unsigned long long min = ~0ull;
    const bool launched = launch("atomics", atomics_kernel, 4, 256, 0, nullptr, &count, &sum, &min) == PMOE_OK;
    r.check("atomics", launched && count == 1024 && sum == 512.0f && min == 1000 - 255 - 3, pmoe_host::last_error());
}

// C [32 x 16] = A [32 x 32] * B [32 x 16] by one warp with the tensor-core wrappers: A and B
// are staged in shared memory by cp.async, A fragments come from ldmatrix, B fragments from
// ldmatrix on B^T (kTrans false) or ldmatrix.trans on B (kTrans true).
template <bool kTrans>
__global__ void mma_tile_kernel(const __nv_bfloat16 *a, const __nv_bfloat16 *b_or_bt, float *c) {
    __shared__ __align__(16) __nv_bfloat16 As[32][32];
    __shared__ __align__(16) __nv_bfloat16 Bs[32 * 16]; // kTrans: B [32][16], else B^T [16][32]
    const int lane = threadIdx.x;
    for (int chunk = lane; chunk < 32 * 32 / 8; chunk += 32) cp_async_16(&As[0][0] + 8 * chunk, a + 8 * chunk);
    for (int chunk = lane; chunk < 32 * 16 / 8; chunk += 32) cp_async_16(Bs + 8 * chunk, b_or_bt + 8 * chunk);
    cp_async_commit();
    cp_async_wait<0>();
    __syncwarp();
    for (int mi = 0; mi < 2; mi++) {
        for (int ni = 0; ni < 2; ni++) {
            float acc[4] = {0, 0, 0, 0};
            for (int k0 = 0; k0 < 32; k0 += 16) {
                uint32_t af[4], bf[4];
                // A matrices: (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
                ldmatrix_x4<false>(af, &As[16 * mi + lane % 8 + 8 * (lane / 8 % 2)][k0 + 8 * (lane / 16)]);
                if (kTrans) // B rows are k: matrices (k 0-7), (k 8-15), (k 16-23), (k 24-31) of columns 8 ni..
                    ldmatrix_x4<true>(bf, Bs + (lane) * 16 + 8 * ni);
                else // B^T rows are n: matrices (k 0-7), (k 8-15), (k 16-23), (k 24-31) of rows 8 ni..
                    ldmatrix_x4<false>(bf, Bs + (8 * ni + lane % 8) * 32 + 8 * (lane / 8));
                const uint32_t b_step[2] = {bf[k0 / 8], bf[k0 / 8 + 1]};
                mma_bf16_16816(acc, af, b_step, acc);
            }
            const int g = lane / 4, t = lane % 4;
            for (int i = 0; i < 4; i++) c[(16 * mi + g + 8 * (i / 2)) * 16 + 8 * ni + 2 * t + i % 2] = acc[i];
        }
    }
}

void check_mma(Report &r) {
    // Small integers: bf16 holds them exactly and every sum is exact in f32.
    std::vector<__nv_bfloat16> a(32 * 32), b(32 * 16), bt(16 * 32);
    std::vector<float> expected(32 * 16, 0.0f);
    for (int i = 0; i < 32; i++)
        for (int k = 0; k < 32; k++) a[i * 32 + k] = __float2bfloat16(float((i * 5 + k * 3) % 7 - 3));
    for (int k = 0; k < 32; k++)
        for (int n = 0; n < 16; n++) {
            const float v = float((k * 2 + n * 5) % 9 - 4);
            b[k * 16 + n] = bt[n * 32 + k] = __float2bfloat16(v);
        }
    for (int i = 0; i < 32; i++)
        for (int n = 0; n < 16; n++)
            for (int k = 0; k < 32; k++)
                expected[i * 16 + n] += __bfloat162float(a[i * 32 + k]) * __bfloat162float(b[k * 16 + n]);
    for (bool trans : {false, true}) {
        std::vector<float> c(32 * 16, -1.0f);
        const int status = trans ? launch("mma_tile", mma_tile_kernel<true>, 1, 32, 0, nullptr, a.data(), b.data(), c.data())
                                 : launch("mma_tile", mma_tile_kernel<false>, 1, 32, 0, nullptr, a.data(), bt.data(), c.data());
        r.check(trans ? "cp.async + ldmatrix.trans + mma.m16n8k16 tile product"
                      : "cp.async + ldmatrix + mma.m16n8k16 tile product",
                status == PMOE_OK && c == expected, status == PMOE_OK ? "wrong product" : pmoe_host::last_error());
    }
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe::cuda;

extern "C" PMOE_API int pmoe_hostexec_selftest(int32_t thread_mode, char *report, int64_t capacity) {
    pmoe_host::thread_mode_override() = thread_mode ? 1 : 0;
    Report r;
    check_scan_reduce(r);
    check_warp(r);
    check_early_return(r);
    // The deliberate deadlocks wait 2 s, not 30; the other checks keep the full timeout, which a
    // 1024-thread block of OS threads needs under ThreadSanitizer on a loaded machine.
    pmoe_host::deadlock_seconds() = 2;
    check_faults(r);
    pmoe_host::deadlock_seconds() = 30;
    check_shared(r, thread_mode != 0);
    check_atomics(r);
    check_mma(r);
    pmoe_host::thread_mode_override() = -1;
    if (report && capacity > 0) std::snprintf(report, size_t(capacity), "%s", r.text.c_str());
    return r.failures;
}
