// Hardware instructions used by the kernels, behind small wrappers: inline PTX on the device,
// and in the host-execution harness an exact implementation of the per-lane semantics that the
// PTX ISA documents. The harness can only show that kernels and this emulation agree; the GPU
// suite confirms the layouts on hardware. In the harness each wrapper also takes its caller's
// file and line (PMOE_SITE_PARAMS), so faults name the kernel's line.
#pragma once

#include "common.cuh"

#ifndef PMOE_HOST_EXEC
#define PMOE_SITE_PARAMS
#define PMOE_SITE_ARG
#else
#define PMOE_SITE_ARG , PMOE_SITE_PARAMS
#endif

namespace pmoe {
namespace cuda {

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D = A * B + C for one warp ----
// A [16 x 16] bf16, B [16 x 8] bf16, C and D [16 x 8] f32. With g = lane / 4, t = lane % 4, the
// fragments hold (bf16 pairs packed low element first in each 32-bit register):
//   a[0..7]: A[g + 8 * ((i / 2) % 2)][2t + (i % 2) + 8 * (i / 4)]
//   b[0..3]: B[2t + (i % 2) + 8 * (i / 2)][g]
//   c[0..3], d[0..3]: C[g + 8 * (i / 2)][2t + (i % 2)]
__device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2],
                                               const float c[4] PMOE_SITE_ARG) {
#ifdef PMOE_HOST_EXEC
    struct Fragments {
        uint32_t a[4], b[2];
        float c[4];
    } mine;
    std::memcpy(mine.a, a, sizeof mine.a);
    std::memcpy(mine.b, b, sizeof mine.b);
    std::memcpy(mine.c, c, sizeof mine.c);
    const int lane = pmoe_host::self().lane, g = lane / 4, t = lane % 4;
    pmoe_host::warp_collective(kFullMask, &mine, sizeof mine, {"mma.m16n8k16", pmoe_file, pmoe_line},
                               [&](const unsigned char(&slots)[32][pmoe_host::kSlotBytes]) {
        auto half = [](uint32_t reg, int which) {
            const uint32_t bits = (which ? reg >> 16 : reg & 0xffffu) << 16;
            float f;
            std::memcpy(&f, &bits, 4);
            return f;
        };
        auto lane_of = [&](int l) {
            Fragments f;
            std::memcpy(&f, slots[l], sizeof f);
            return f;
        };
        auto A = [&](int r, int k) { // element (r, k) of A, from the lane that holds it
            const int i = 4 * (k / 8) + 2 * (r / 8) + (k % 2);
            return half(lane_of(4 * (r % 8) + (k % 8) / 2).a[i / 2], i % 2);
        };
        auto B = [&](int k, int n) {
            const int i = 2 * (k / 8) + (k % 2);
            return half(lane_of(4 * n + (k % 8) / 2).b[i / 2], i % 2);
        };
        for (int i = 0; i < 4; i++) {
            const int r = g + 8 * (i / 2), n = 2 * t + (i % 2);
            float acc = mine.c[i];
            for (int k = 0; k < 16; k++) acc += A(r, k) * B(k, n); // bf16 products are exact in f32
            d[i] = acc;
        }
    });
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
                   "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// ---- ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8 x 8 b16 matrices ----
// Lanes 8i .. 8i + 7 give the addresses of rows 0..7 of matrix i (16 bytes each, in shared
// memory, 16-byte aligned: the harness checks both). Lane l receives in r[i] the pair at row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1;
// with trans, the pair at rows 2 (l % 4) and 2 (l % 4) + 1 of column l / 4.
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *row PMOE_SITE_ARG) {
#ifdef PMOE_HOST_EXEC
    const int lane = pmoe_host::self().lane;
    const pmoe_host::Site site{kTrans ? "ldmatrix.x4.trans" : "ldmatrix.x4", pmoe_file, pmoe_line};
    pmoe_host::check_address(site, "row address", lane, row, true);
    pmoe_host::warp_collective(kFullMask, &row, sizeof row, site,
                               [&](const unsigned char(&slots)[32][pmoe_host::kSlotBytes]) {
        auto row_of = [&](int l) {
            const unsigned char *p;
            std::memcpy(&p, slots[l], sizeof p);
            return p;
        };
        for (int i = 0; i < 4; i++) {
            uint16_t lo, hi;
            if (kTrans) {
                std::memcpy(&lo, row_of(8 * i + 2 * (lane % 4)) + 2 * (lane / 4), 2);
                std::memcpy(&hi, row_of(8 * i + 2 * (lane % 4) + 1) + 2 * (lane / 4), 2);
            } else {
                std::memcpy(&lo, row_of(8 * i + lane / 4) + 4 * (lane % 4), 2);
                std::memcpy(&hi, row_of(8 * i + lane / 4) + 4 * (lane % 4) + 2, 2);
            }
            r[i] = uint32_t(lo) | uint32_t(hi) << 16;
        }
    });
#else
    const unsigned address = unsigned(__cvta_generic_to_shared(row));
    if (kTrans)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(address));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(address));
#endif
}

// ---- cp.async.cg.shared.global (16 bytes), commit_group, wait_group ----
// The copy is complete only after a wait_group that covers its group. The harness reads the
// source at issue and poisons the destination until that wait, so a read of the destination
// before it (another warp's too: a missing barrier) reads the poison. Both addresses must be
// 16-byte aligned, the destination in shared memory, the source in global memory.
__device__ __forceinline__ void cp_async_16(void *shared_dst, const void *global_src PMOE_SITE_ARG) {
#ifdef PMOE_HOST_EXEC
    pmoe_host::cp_async_issue(shared_dst, global_src, {"cp.async", pmoe_file, pmoe_line});
#else
    const unsigned address = unsigned(__cvta_generic_to_shared(shared_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global_src));
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef PMOE_HOST_EXEC
    pmoe_host::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most `kPending` committed groups are still in flight.
template <int kPending> __device__ __forceinline__ void cp_async_wait() {
#ifdef PMOE_HOST_EXEC
    pmoe_host::cp_async_wait(kPending);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#endif
}

} // namespace cuda
} // namespace pmoe
