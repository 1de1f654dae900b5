// The elementwise kernels' spans (elementwise_spans.inc) compiled for AVX-512, inside a `#pragma
// GCC target` region so that only these functions use it; elementwise.cpp and optimizer.cpp call
// them only when cpu_isa_level() allows. Headers are included before the region, so their inline
// functions (load, store, add_column_block) are inlined here as AVX-512 code without an AVX-512 copy that another
// caller could pick up.
#include <cmath>
#include <cstdint>

#include "common.hpp"
#include "dense.hpp"
#include "elementwise.hpp"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")
namespace pmoe::avx512_elem {
#include "elementwise_spans.inc"
} // namespace pmoe::avx512_elem
#pragma GCC pop_options
