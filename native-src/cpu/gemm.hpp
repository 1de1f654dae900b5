// The GEMM engine's (gemm.cpp) interface to other kernels, and its micro-kernels, one per
// instruction-set level. The AVX2 kernel is compiled with the library's baseline flags
// (gemm.cpp); the AVX-512 ones in gemm_avx512.cpp, inside target regions, so nothing else in
// the library uses AVX-512.
#pragma once

#include <cstdint>

namespace pmoe {

class ThreadBuffer;

// An op(B) packed once by pack_b, for the problems that read it again and again (attention's
// keys and values, once per query block): the engine's NR-wide panels at the level in use,
// each holding the whole depth (zero past the columns and past the depth).
struct PackedB {
    const float *panels;
    int64_t k, n;         // the depth and columns packed
    int64_t panel_stride; // floats from one panel to the next
    int nr, depth_per_step; // the panel format: the micro-kernel's
    bool bf16;
};

// C = alpha * op(A) * op(B) + beta * C, row-major. Element (i, p) of op(A) is
// a[i * a_row + p * a_col]; element (p, j) of op(B) is b[p * b_row + j * b_col]. A and B are
// f32 or (bf16_in) bf16; C is f32 or (bf16_out) bf16, accumulated in f32 and rounded once.
//
// With b_packed, op(B) is also columns [0, n) and depth [b_depth0, b_depth0 + k) of that
// packing, and is read from there rather than packed again. The engine does so when the
// packing is in its format, starts a whole step into its depth and, with pairs, ends on a
// whole pair or where the packing ends (else the last pair would hold the next element where
// the engine's own packing puts a zero); otherwise it packs from b as usual.
struct GemmProblem {
    int64_t m, n, k;
    float alpha, beta;
    const void *a;
    int64_t a_row, a_col;
    const void *b;
    int64_t b_row, b_col;
    void *c;
    int64_t ldc;
    bool bf16_in, bf16_out;
    const PackedB *b_packed = nullptr;
    int64_t b_depth0 = 0;
};

// Packs op(B) of depth k and n columns (element (p, j) at b[p * b_row + j * b_col], f32 or
// bf16) into `into`, grown as needed, for problems that name it in b_packed. Returns false
// when the buffer cannot be grown; never throws.
bool pack_b(const void *b, int64_t b_row, int64_t b_col, bool bf16, int64_t k, int64_t n,
            ThreadBuffer &into, PackedB &packed);

// Runs one problem on the calling thread, for kernels that run it inside their own parallel
// region: the same chain per element of C as pmoe_gemm (gemm.cpp's header), at the level in
// use. Returns false, with C untouched, when the thread's packing buffers cannot be grown;
// never throws.
bool gemm_on_this_thread(const GemmProblem &p);

// acc = A panel (MR x steps) * B panel (steps x NR); then for the mr x nr corner of the tile at
// c: c = fma(alpha, acc, prev) with prev = c, or, on the first depth block, beta * c (0 if
// beta == 0: c is not read). A "step" is one depth element (f32 panels) or a pair of depth
// elements (bf16-pair panels: each 32-bit word holds elements 2s and 2s + 1 of a lane); panel
// q of a block holds word (lane l, step s) at [s * W + l]. Edge tiles do the same arithmetic.
using MicroKernelFn = void (*)(int steps, const float *a, const float *b, float *c, int64_t ldc,
                               int mr, int nr, float alpha, float beta, bool first);

// The same tile when C is bf16, on the product's last depth block: c (bf16, row stride ldc) =
// round(fma(alpha, acc, prev)), prev the f32 partial sum of the earlier blocks, or, when the
// whole depth is this one block (partial == null), beta * c (not read if beta == 0); rounded as
// f32_to_bf16 rounds. The values the f32 path stores and then rounds, without that extra pass.
using MicroKernelToBf16Fn = void (*)(int steps, const float *a, const float *b,
                                     const float *partial, int64_t ld_partial, uint16_t *c,
                                     int64_t ldc, int mr, int nr, float alpha, float beta);

struct MicroKernel {
    int mr, nr;
    int depth_per_step; // 1: f32 panels; 2: bf16-pair panels
    MicroKernelFn run;
    MicroKernelToBf16Fn run_to_bf16; // null: a bf16 C is rounded from the f32 copy in a pass
};

// How many depth rows ahead the lanes-contiguous packers (gemm.cpp, and the pair packer below)
// prefetch the row they will read: the loads of a row are the packers' cost (a weight
// gradient's operands come from L3 or memory, row after row at the stride of the activations),
// and the hardware prefetcher does not run far enough ahead on its own (weight-gradient GEMMs
// 3-9% faster with it, f32 and bf16).
constexpr int PACK_PREFETCH_ROWS = 8;

// Packs bf16 pairs along depth for the vdpbf16ps kernel, lanes contiguous (element (l, p) at
// src[l + p * ld]): word (l, s) = (element (l, 2s), element (l, 2s + 1)), two depth rows
// interleaved, in gemm.cpp's panel format (W-lane panels, zero past the lanes and past kc).
// AVX-512 code (gemm_avx512.cpp): only the AVX512_BF16 level packs pairs.
namespace avx512_bf16 {
void pack_pairs_lanes_contiguous(int W, const uint16_t *src, int64_t ld, int lanes, int kc, uint16_t *dst);
} // namespace avx512_bf16

// The f32 kernel on 512-bit registers, and the vdpbf16ps kernel on bf16 pairs.
extern const MicroKernel micro_avx512_f32;
extern const MicroKernel micro_avx512_bf16;

} // namespace pmoe
