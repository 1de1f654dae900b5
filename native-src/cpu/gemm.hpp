// The micro-kernels of the GEMM engine (gemm.cpp), one per instruction-set level. The AVX2
// kernel is compiled with the library's baseline flags (gemm.cpp); the AVX-512 ones in
// gemm_avx512.cpp, inside target regions, so nothing else in the library uses AVX-512.
#pragma once

#include <cstdint>

namespace pmoe {

// acc = A panel (MR x steps) * B panel (steps x NR); then for the mr x nr corner of the tile at
// c: c = fma(alpha, acc, prev) with prev = c, or, on the first depth block, beta * c (0 if
// beta == 0: c is not read). A "step" is one depth element (f32 panels) or a pair of depth
// elements (bf16-pair panels: each 32-bit word holds elements 2s and 2s + 1 of a lane); panel
// q of a block holds word (lane l, step s) at [s * W + l]. Edge tiles do the same arithmetic.
using MicroKernelFn = void (*)(int steps, const float *a, const float *b, float *c, int64_t ldc,
                               int mr, int nr, float alpha, float beta, bool first);

struct MicroKernel {
    int mr, nr;
    int depth_per_step; // 1: f32 panels; 2: bf16-pair panels
    MicroKernelFn run;
};

// The f32 kernel on 512-bit registers, and the vdpbf16ps kernel on bf16 pairs.
extern const MicroKernel micro_avx512_f32;
extern const MicroKernel micro_avx512_bf16;

} // namespace pmoe
