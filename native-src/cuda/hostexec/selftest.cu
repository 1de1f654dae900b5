// Self-test of the host-execution harness and of the project's primitives, built into
// libpanamoe_cuda_host.so only (not part of panamoe.h): the scan/reduce primitives against
// sequential sums, the warp collectives' documented edge cases, the execution-model guarantees
// the kernels rely on (early return leaves barriers, shared memory is poisoned per block,
// deadlocks and misuse are reported, not hung), and the hardware wrappers of hw.cuh composed
// into a bf16 tensor-core tile product checked against exact integer arithmetic; and, for each
// detector of the harness, a deliberately broken kernel that it must catch (naming the
// problem) next to the correct variant, which must pass.
//
//   int pmoe_hostexec_selftest(int32_t thread_mode, char *report, int64_t capacity)
// runs every check with fibers (thread_mode 0) or OS threads (1), writes one line per check
// ("ok name" / "FAIL name: why") and returns the number of failures. With OS threads and
// PMOE_HOSTEXEC_SELFTEST_RACE=1 it first runs a kernel with a data race, which the
// ThreadSanitizer build must report (scripts/hostexec-tsan --ci proves that it does).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
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

// Warp 0 reads what warp 1 writes, with no barrier: with OS threads, a data race between two
// real threads, which ThreadSanitizer reports and nothing else in the harness sees.
__global__ void cross_warp_race_kernel(int32_t *out) {
    __shared__ int32_t slot[64];
    slot[threadIdx.x] = int32_t(threadIdx.x);
    out[threadIdx.x] = slot[(threadIdx.x + 32) % 64];
}

// Only on request (PMOE_HOSTEXEC_SELFTEST_RACE=1): the race's outcome is undefined, so it is no
// check; under ThreadSanitizer (halt_on_error) the process stops here with the report.
void run_deliberate_race(Report &r) {
    const char *v = std::getenv("PMOE_HOSTEXEC_SELFTEST_RACE");
    if (!v || std::string(v) != "1") return;
    std::vector<int32_t> out(64, 0);
    const int status = launch("cross_warp_race", cross_warp_race_kernel, 1, 64, 0, nullptr, out.data());
    r.check("the deliberate race (PMOE_HOSTEXEC_SELFTEST_RACE=1) ran", status == PMOE_OK, pmoe_host::last_error());
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

// ---- detectors: each broken kernel is caught, its correct variant passes ----

bool fails_with(int status, std::initializer_list<const char *> needles) {
    if (status == PMOE_OK) return false;
    for (const char *n : needles)
        if (pmoe_host::last_error().find(n) == std::string::npos) return false;
    return true;
}

std::string outcome(int status) { return status == PMOE_OK ? std::string("it passed") : pmoe_host::last_error(); }

// A 2-stage cp.async pipeline, each thread staging one 16-byte chunk per step and then reading
// chunks of other warps. Without the trailing barrier a warp that finishes a step issues the
// copy into the stage the other warps still read, which the harness poisons at issue.
constexpr int kPipeThreads = 128, kPipeSteps = 4, kPipeInts = 4 * kPipeThreads;

template <bool kTrailingBarrier> __global__ void pipeline_kernel(const int32_t *in, uint32_t *out) {
    __shared__ __align__(16) int32_t stage[2][kPipeInts];
    const int t = threadIdx.x;
    uint32_t sum = 0;
    cp_async_16(&stage[0][4 * t], in + 4 * t);
    cp_async_commit();
    for (int s = 0; s < kPipeSteps; s++) {
        if (s + 1 < kPipeSteps) {
            cp_async_16(&stage[(s + 1) & 1][4 * t], in + (s + 1) * kPipeInts + 4 * t);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        for (int j = 0; j < 8; j++) sum += uint32_t(stage[s & 1][(4 * t + 68 * j + 1) % kPipeInts]);
        if (kTrailingBarrier) __syncthreads();
    }
    out[t] = sum;
}

void check_pipeline(Report &r) {
    std::vector<int32_t> in(kPipeSteps * kPipeInts);
    for (size_t i = 0; i < in.size(); i++) in[i] = int32_t(i % 1000);
    std::vector<uint32_t> expected(kPipeThreads, 0), out(kPipeThreads);
    for (int t = 0; t < kPipeThreads; t++)
        for (int s = 0; s < kPipeSteps; s++)
            for (int j = 0; j < 8; j++) expected[t] += uint32_t(in[s * kPipeInts + (4 * t + 68 * j + 1) % kPipeInts]);
    for (int schedule : {int(pmoe_host::Schedule::kInOrder), int(pmoe_host::Schedule::kRandom)}) {
        pmoe_host::schedule_override() = schedule;
        const char *which = schedule == int(pmoe_host::Schedule::kInOrder) ? " (in-order)" : " (random)";
        int status = launch("pipeline", pipeline_kernel<true>, 1, kPipeThreads, 0, nullptr, in.data(), out.data());
        r.check((std::string("a cp.async pipeline with its trailing __syncthreads") + which).c_str(),
                status == PMOE_OK && out == expected, outcome(status));
        status = launch("pipeline_no_trailing_barrier", pipeline_kernel<false>, 1, kPipeThreads, 0, nullptr, in.data(),
                        out.data());
        r.check((std::string("missing pipeline barrier: a warp reads a stage that another warp's cp.async "
                             "has poisoned") + which).c_str(),
                status == PMOE_OK && out != expected, status == PMOE_OK ? "the result was right" : outcome(status));
    }
    pmoe_host::schedule_override() = int(pmoe_host::Schedule::kInOrder);
}

// Address checks. which: 0 all correct, 1 cp.async from a source 8 bytes off, 2 cp.async into
// global memory, 3 ldmatrix on a row 8 bytes off, 4 ldmatrix on global memory, 5 a misaligned
// 16-byte pack (uint4) load.
__global__ void address_kernel(int which, const int32_t *in, int32_t *out) {
    __shared__ __align__(16) int32_t tile[4 * 32 + 4];
    const int t = threadIdx.x;
    cp_async_16(which == 2 ? out + 4 * t : &tile[4 * t], in + 4 * t + (which == 1 ? 2 : 0));
    cp_async_commit();
    cp_async_wait<0>();
    __syncwarp();
    uint32_t rows[4];
    ldmatrix_x4<false>(rows, which == 4 ? in + 4 * t : &tile[4 * t + (which == 3 ? 2 : 0)]);
    const uint4 pack = reinterpret_cast<const uint4 *>(in + (which == 5 ? 1 : 0))[t];
    out[t] = int32_t(pack.x) + int32_t(rows[0] & 0u);
}

void check_addresses(Report &r, bool threads) {
    alignas(16) int32_t in[4 * 32 + 4];
    alignas(16) int32_t out[4 * 32];
    for (int i = 0; i < 4 * 32 + 4; i++) in[i] = 3 * i;
    int status = launch("address", address_kernel, 1, 32, 0, nullptr, 0, in, out);
    bool ok = status == PMOE_OK;
    for (int t = 0; t < 32 && ok; t++) ok = out[t] == in[4 * t];
    r.check("aligned cp.async, ldmatrix and 16-byte packs pass", ok, outcome(status));
    struct Case {
        int which;
        const char *name;
        std::initializer_list<const char *> needles;
    };
    const Case cases[] = {
        {1, "misaligned cp.async source", {"cp.async at selftest.cu", "source of lane", "not 16-byte aligned"}},
        {2, "cp.async into global memory", {"cp.async at selftest.cu", "destination", "not in shared memory"}},
        {3, "misaligned ldmatrix row", {"ldmatrix.x4 at selftest.cu", "row address of lane", "not 16-byte aligned"}},
        {4, "ldmatrix on global memory", {"ldmatrix.x4 at selftest.cu", "not in shared memory"}},
        {5, "misaligned 16-byte pack", {"misaligned", "selftest.cu", "uint4", "needs 16-byte alignment"}},
    };
    for (const Case &c : cases) {
        if (threads && c.which == 5) continue; // a sanitizer stop cannot be recovered from in thread mode
        status = launch("address", address_kernel, 1, 32, 0, nullptr, c.which, in, out);
        r.check((std::string(c.name) + " is reported").c_str(), fails_with(status, c.needles), outcome(status));
    }
}

// Warp collectives. which: 0 one call site (correct), 1 two call sites, 2 a shuffle meeting a
// __syncwarp, 3 lane 31 exits before a full-mask shuffle, 4 lane 31 exits and is left out of
// the mask (correct).
__global__ void collective_kernel(int which, int32_t *out) {
    const int lane = threadIdx.x;
    int32_t v = lane;
    if ((which == 3 || which == 4) && lane == 31) return;
    if (which == 1 && lane < 16)
        v = __shfl_xor_sync(kFullMask, v, 16);
    else if (which == 2 && lane == 0)
        __syncwarp();
    else if (which >= 3)
        v = __shfl_sync(which == 3 ? kFullMask : 0x7fffffffu, v, 0) + lane;
    else
        v = __shfl_xor_sync(kFullMask, v, 16);
    out[lane] = v;
}

void check_collectives(Report &r) {
    int32_t out[32];
    int status = launch("collective", collective_kernel, 1, 32, 0, nullptr, 0, out);
    bool ok = status == PMOE_OK;
    for (int l = 0; l < 32 && ok; l++) ok = out[l] == (l ^ 16);
    r.check("a shuffle from one call site passes", ok, outcome(status));
    status = launch("collective", collective_kernel, 1, 32, 0, nullptr, 4, out);
    ok = status == PMOE_OK;
    for (int l = 0; l < 31 && ok; l++) ok = out[l] == l;
    r.check("a mask that leaves out an exited lane passes", ok, outcome(status));
    status = launch("collective", collective_kernel, 1, 32, 0, nullptr, 1, out);
    r.check("a shuffle pairing with another call site's shuffle is reported",
            fails_with(status, {"__shfl_xor_sync at selftest.cu", "must meet at one call"}), outcome(status));
    status = launch("collective", collective_kernel, 1, 32, 0, nullptr, 2, out);
    r.check("a shuffle pairing with a __syncwarp is reported",
            fails_with(status, {"__syncwarp at selftest.cu", "__shfl_xor_sync at selftest.cu"}), outcome(status));
    status = launch("collective", collective_kernel, 1, 32, 0, nullptr, 3, out);
    r.check("a mask naming an exited lane is reported", fails_with(status, {"__shfl_sync at selftest.cu", "31", "exited"}),
            outcome(status));
}

// Thread t reads what thread t - 1 wrote: a lower thread writes, a higher one reads. In order
// the writer always runs first; the random schedule shows the missing barrier.
template <bool kBarrier> __global__ void neighbour_kernel(int32_t *out) {
    __shared__ int32_t slot[64];
    const int t = threadIdx.x;
    slot[t] = t + 1;
    if (kBarrier) __syncthreads();
    out[t] = t > 0 ? slot[t - 1] : 0;
}

// Block b reads what block b - 1 wrote (kChained), or writes its own cell only.
template <bool kChained> __global__ void chain_kernel(int32_t *cells) {
    if (threadIdx.x == 0) cells[blockIdx.x + 1] = kChained ? cells[blockIdx.x] + 1 : int32_t(blockIdx.x) + 1;
}

// Each block adds one to a counter: read, barrier, write (lost updates when blocks overlap), or
// atomically.
template <bool kAtomic> __global__ void counter_kernel(int32_t *count) {
    __shared__ int32_t seen;
    if (threadIdx.x == 0 && !kAtomic) seen = *count;
    __syncthreads();
    if (threadIdx.x == 0) {
        if (kAtomic)
            atomicAdd(count, 1);
        else
            *count = seen + 1;
    }
}

void check_schedules(Report &r) {
    pmoe_host::schedule_override() = int(pmoe_host::Schedule::kRandom);
    std::vector<int32_t> out(64), expected(64);
    for (int t = 0; t < 64; t++) expected[t] = t;
    int status = launch("neighbour", neighbour_kernel<true>, 1, 64, 0, nullptr, out.data());
    r.check("random schedule: a write, barrier, then a higher thread's read passes", status == PMOE_OK && out == expected,
            outcome(status));
    status = launch("neighbour_no_barrier", neighbour_kernel<false>, 1, 64, 0, nullptr, out.data());
    bool poisoned = false;
    for (int v : out) poisoned |= v == kPoisonInt;
    r.check("random schedule: a write then a higher thread's read without a barrier reads the poison",
            status == PMOE_OK && poisoned, outcome(status));

    constexpr int kBlocks = 16;
    std::vector<int32_t> cells(kBlocks + 1), chain(kBlocks + 1);
    for (int b = 0; b <= kBlocks; b++) chain[b] = b;
    for (bool chained : {false, true}) {
        std::fill(cells.begin(), cells.end(), -1);
        cells[0] = 0;
        status = chained ? launch("chain", chain_kernel<true>, kBlocks, 32, 0, nullptr, cells.data())
                         : launch("own_cell", chain_kernel<false>, kBlocks, 32, 0, nullptr, cells.data());
        r.check(chained ? "random block order: a block reading another block's output is seen"
                        : "random block order: blocks writing their own cells pass",
                status == PMOE_OK && (cells == chain) != chained, outcome(status));
    }
    for (bool atomic : {true, false}) {
        int32_t count = 0;
        status = atomic ? launch("counter_atomic", counter_kernel<true>, kBlocks, 64, 0, nullptr, &count)
                        : launch("counter_racy", counter_kernel<false>, kBlocks, 64, 0, nullptr, &count);
        r.check(atomic ? "blocks in flight: an atomic counter counts every block"
                       : "blocks in flight: a read, barrier, write counter loses updates",
                status == PMOE_OK && (count == kBlocks) == atomic, "count " + std::to_string(count));
    }
    pmoe_host::schedule_override() = int(pmoe_host::Schedule::kInOrder);
}

// 4 KiB of static shared memory next to the dynamic shared memory of the launch.
__global__ void shared_limit_kernel(int32_t *out) {
    __shared__ int32_t fixed[1024];
    PMOE_DYNAMIC_SHARED(int32_t, dynamic);
    fixed[threadIdx.x] = 1;
    dynamic[threadIdx.x] = 2;
    __syncthreads();
    out[threadIdx.x] = fixed[(threadIdx.x + 1) % 32] + dynamic[(threadIdx.x + 1) % 32];
}

void check_shared_limits(Report &r) {
    int32_t out[32];
    const size_t fixed = 1024 * sizeof(int32_t);
    for (const pmoe_host::Arch &arch : pmoe_host::kArchs) {
        pmoe_host::arch_override() = arch.sm;
        const std::string sm = "sm_" + std::to_string(arch.sm);
        int status = launch("shared_limit", shared_limit_kernel, 1, 32, arch.block_bytes - fixed, nullptr, out);
        r.check((sm + ": static + dynamic shared memory at the limit passes").c_str(),
                status == PMOE_OK && out[0] == 3, outcome(status));
        status = launch("shared_limit", shared_limit_kernel, 1, 32, arch.block_bytes - fixed + 16, nullptr, out);
        const std::string total = std::to_string(arch.block_bytes + 16) + " bytes of shared memory (4096 static";
        r.check((sm + ": an oversized shared buffer is reported").c_str(),
                fails_with(status, {"shared_limit: ", total.c_str(), ("exceed " + sm).c_str()}), outcome(status));
    }
    pmoe_host::arch_override() = -1;
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe::cuda;

extern "C" PMOE_API int pmoe_hostexec_selftest(int32_t thread_mode, char *report, int64_t capacity) {
    pmoe_host::thread_mode_override() = thread_mode ? 1 : 0;
    // In order unless a check asks for the random schedule.
    pmoe_host::schedule_override() = int(pmoe_host::Schedule::kInOrder);
    Report r;
    if (thread_mode) run_deliberate_race(r);
    // The deliberate deadlocks wait 2 s; the other checks keep the full timeout (30 s, or
    // PMOE_HOSTEXEC_DEADLOCK_S: scripts/hostexec-tsan gives minutes), which a 1024-thread block
    // of OS threads needs under ThreadSanitizer on a loaded machine.
    const char *timeout = std::getenv("PMOE_HOSTEXEC_DEADLOCK_S");
    const int deadlock_seconds = timeout && std::atoi(timeout) > 0 ? std::atoi(timeout) : 30;
    pmoe_host::deadlock_seconds() = deadlock_seconds;
    check_scan_reduce(r);
    check_warp(r);
    check_early_return(r);
    pmoe_host::deadlock_seconds() = 2;
    check_faults(r);
    pmoe_host::deadlock_seconds() = deadlock_seconds;
    check_shared(r, thread_mode != 0);
    check_atomics(r);
    check_mma(r);
    check_addresses(r, thread_mode != 0);
    check_collectives(r);
    check_shared_limits(r);
    if (!thread_mode) { // the fiber schedules; in thread mode these kernels are data races
        check_pipeline(r);
        check_schedules(r);
    }
    pmoe_host::schedule_override() = -1;
    pmoe_host::thread_mode_override() = -1;
    if (report && capacity > 0) std::snprintf(report, size_t(capacity), "%s", r.text.c_str());
    return r.failures;
}

// Launches so far of kernels launched as `name`: lets a test check which kernel ran an entry point
// (pmoe_gemm_bf16's tensor-core or SIMT route).
extern "C" PMOE_API int64_t pmoe_hostexec_launches(const char *name) {
    auto &s = pmoe_host::launch_state();
    std::lock_guard<std::mutex> lock(s.mu);
    const auto it = s.launches.find(name);
    return it == s.launches.end() ? 0 : int64_t(it->second);
}
