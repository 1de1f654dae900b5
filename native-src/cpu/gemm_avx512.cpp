// The AVX-512 micro-kernels, and the packing of bf16 pairs that only the vdpbf16ps kernel reads.
// Each is compiled inside a `#pragma GCC target` region, so only these functions may use
// AVX-512 (the library's baseline is AVX2); gemm.cpp calls them only when cpu_isa_level()
// allows. Standard headers are included before the regions, so no inline library function is
// instantiated with AVX-512 code that another caller could pick up.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "gemm.hpp"
#include "panamoe.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")
namespace pmoe::avx512_f32 {
#define PMOE_DPBF16 0
#include "gemm_avx512_kernel.inc"
#undef PMOE_DPBF16
} // namespace pmoe::avx512_f32
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl,avx512bf16")
namespace pmoe::avx512_bf16 {
#define PMOE_DPBF16 1
#include "gemm_avx512_kernel.inc"
#undef PMOE_DPBF16

// W <= 32 (a panel is MR or NR lanes). Per depth step and panel: the panel's lanes of the two
// depth rows (masked loads: zero past the lanes), interleaved into pair words by one two-source
// permute per 16 lanes, stored whole (W words, so the padding lanes get their zeros).
void pack_pairs_lanes_contiguous(int W, const uint16_t *src, int64_t ld, int lanes, int kc, uint16_t *dst) {
    // Word j of the low half pairs lane j of row 0 with lane j of row 1 (index 32 + j of the
    // two-source permute); the high half does lanes 16 + j.
    static constexpr auto index = [](int first_lane) {
        std::array<uint16_t, 32> idx{};
        for (int j = 0; j < 32; j++) idx[j] = uint16_t(first_lane + j / 2 + (j % 2) * 32);
        return idx;
    };
    alignas(64) static constexpr std::array<uint16_t, 32> lo_index = index(0), hi_index = index(16);
    const __m512i lo_idx = _mm512_load_si512(lo_index.data()), hi_idx = _mm512_load_si512(hi_index.data());
    const int steps = (kc + 1) / 2, panels = (lanes + W - 1) / W;
    const int64_t panel = int64_t(steps) * W * 2;
    const __mmask16 low_words = __mmask16(W >= 16 ? 0xffff : (1u << W) - 1);
    const __mmask16 high_words = __mmask16(W >= 32 ? 0xffff : W <= 16 ? 0 : (1u << (W - 16)) - 1);
    for (int s = 0; s < steps; s++) {
        const uint16_t *r0 = src + int64_t(2 * s) * ld;
        const uint16_t *r1 = 2 * s + 1 < kc ? r0 + ld : nullptr;
        if (2 * s + PACK_PREFETCH_ROWS + 1 < kc) // the two rows PACK_PREFETCH_ROWS ahead, into L1
            for (int64_t off = 0; off < int64_t(lanes) * 2; off += 64) {
                _mm_prefetch(reinterpret_cast<const char *>(r0 + PACK_PREFETCH_ROWS * ld) + off, _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char *>(r1 + PACK_PREFETCH_ROWS * ld) + off, _MM_HINT_T0);
            }
        for (int q = 0; q < panels; q++) {
            const int n = std::min(W, lanes - q * W);
            const __mmask32 in = __mmask32(n >= 32 ? 0xffffffffu : (1u << n) - 1);
            const __m512i x = _mm512_maskz_loadu_epi16(in, r0 + q * W);
            const __m512i y = r1 ? _mm512_maskz_loadu_epi16(in, r1 + q * W) : _mm512_setzero_si512();
            uint16_t *d = dst + q * panel + int64_t(s) * W * 2;
            _mm512_mask_storeu_epi32(d, low_words, _mm512_permutex2var_epi16(x, lo_idx, y));
            if (high_words) _mm512_mask_storeu_epi32(d + 32, high_words, _mm512_permutex2var_epi16(x, hi_idx, y));
        }
    }
}

} // namespace pmoe::avx512_bf16
#pragma GCC pop_options

namespace pmoe {
const MicroKernel micro_avx512_f32 = {avx512_f32::MR, avx512_f32::NR, 1, &avx512_f32::kernel,
                                      &avx512_f32::kernel_to_bf16};
const MicroKernel micro_avx512_bf16 = {avx512_bf16::MR, avx512_bf16::NR, 2, &avx512_bf16::kernel,
                                       &avx512_bf16::kernel_to_bf16};
} // namespace pmoe
