// The AVX-512 micro-kernels. Each is compiled inside a `#pragma GCC target` region, so only
// these functions may use AVX-512 (the library's baseline is AVX2); gemm.cpp calls them only
// when cpu_isa_level() allows. Standard headers are included before the regions, so no inline
// library function is instantiated with AVX-512 code that another caller could pick up.
#include <immintrin.h>

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
} // namespace pmoe::avx512_bf16
#pragma GCC pop_options

namespace pmoe {
const MicroKernel micro_avx512_f32 = {avx512_f32::MR, avx512_f32::NR, 1, &avx512_f32::kernel,
                                      &avx512_f32::kernel_to_bf16};
const MicroKernel micro_avx512_bf16 = {avx512_bf16::MR, avx512_bf16::NR, 2, &avx512_bf16::kernel,
                                       &avx512_bf16::kernel_to_bf16};
} // namespace pmoe
