// The attention's row math (attention_rows.inc) compiled for AVX-512, inside a `#pragma GCC
// target` region so that only these functions use it; attention.cpp calls them only when
// cpu_isa_level() allows. Headers are included before the region, so their inline functions
// (exp_approx, lane_sum, f32_to_bf16) are inlined here as AVX-512 code without an AVX-512 copy
// that another caller could pick up.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "attention.hpp"
#include "common.hpp"
#include "dense.hpp"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")
namespace pmoe::avx512_attn {
#include "attention_rows.inc"
} // namespace pmoe::avx512_attn
#pragma GCC pop_options
