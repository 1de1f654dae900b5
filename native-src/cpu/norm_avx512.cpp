// The row normalisations' per-row math (norm_rows.inc) compiled for AVX-512, inside a `#pragma
// GCC target` region so that only these functions use it; norm.cpp calls them only when
// cpu_isa_level() allows. Headers are included before the region, so their inline functions
// (lane_sum, add_column_block, load, store) are inlined here as AVX-512 code without an AVX-512
// copy that another caller could pick up.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.hpp"
#include "dense.hpp"
#include "norm.hpp"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")
namespace pmoe::avx512_norm {
#include "norm_rows.inc"
} // namespace pmoe::avx512_norm
#pragma GCC pop_options
