// The activations' row math (activation_spans.inc) compiled for AVX-512, inside a `#pragma GCC
// target` region so that only these functions use it; activation.cpp calls them only when
// cpu_isa_level() allows. Headers are included before the region, so their inline functions
// (sigmoid_approx, load, store) are inlined here as AVX-512 code without an AVX-512 copy that another
// caller could pick up.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "activation.hpp"
#include "common.hpp"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl")
namespace pmoe::avx512_act {
#include "activation_spans.inc"
} // namespace pmoe::avx512_act
#pragma GCC pop_options
