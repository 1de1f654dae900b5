// Shared plumbing of the CPU kernels: checks of array contents, thread count, bf16 (error
// reporting and argument checks: common/).
#pragma once

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common/checks.hpp"
#include "../common/impl.hpp"

namespace pmoe {

// Team size for a region touching about `work` elements (or FLOPs): 1 below a fixed threshold,
// where waking a team costs more than the loop itself, else num_threads(). The kernels give
// bitwise-identical results for any team size, so this changes speed only.
int threads_for(int64_t work);
// threads_for's unit is an element of a plain elementwise loop. An element whose math takes an
// exponential (the router's softmax, the z-loss's logsumexp) costs about this many of them: such
// loops pass their element count times it, so a router's T x E of a few thousand tokens is split.
constexpr int64_t EXP_WORK = 16;
// The PMOE_ISA_* level the kernels use (cpu_isa.cpp).
int cpu_isa_level();
// Of a function (or table of functions) built twice, at the AVX2 baseline and in an AVX-512
// target region, the one the level in use runs.
template <typename F> F at_level_in_use(F avx2, F avx512) {
    return cpu_isa_level() >= PMOE_ISA_AVX512 ? avx512 : avx2;
}

// A thread's scratch buffer, declared thread_local and kept for the next call, grown (64-byte
// aligned, contents not kept) when a call needs more: a buffer allocated afresh on every call
// would fault its pages in every time. grow() returns false when out of memory, since nothing
// may throw inside a parallel region.
class ThreadBuffer {
  public:
    ThreadBuffer() = default;
    ThreadBuffer(const ThreadBuffer &) = delete;
    ThreadBuffer &operator=(const ThreadBuffer &) = delete;
    ~ThreadBuffer() { std::free(data_); }
    bool grow(size_t bytes) {
        if (bytes <= bytes_) return true;
        void *fresh = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!fresh) return false;
        std::free(data_);
        data_ = fresh;
        bytes_ = bytes;
        return true;
    }
    template <typename T> T *as() const { return static_cast<T *>(data_); }

  private:
    void *data_ = nullptr;
    size_t bytes_ = 0;
};

// Runs loop(ready, scratch) on a team of threads_for(work), each thread first growing its own
// scratch, buffer() (a thread_local ThreadBuffer, reached through a function so that each
// thread gets its own), to `bytes`, scratch being its data as floats. loop() holds a
// work-sharing loop, which every thread of the team must reach: a thread whose scratch could
// not grow runs it too, with ready false, and does nothing. Returns false when one could not.
template <typename Buffer, typename Loop>
bool on_team_with_scratch(int64_t work, Buffer buffer, size_t bytes, Loop loop) {
    std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads_for(work))
    {
        ThreadBuffer &scratch = buffer();
        const bool ready = scratch.grow(bytes);
        if (!ready) failed = true;
        loop(ready, scratch.as<float>());
    }
    return !failed;
}

// v[i] in [lo, hi) for every i < n; names the first offender:
// "topk_ids[17] = 9 is out of range [0, 8)".
inline int require_ids_in_range(const char *name, const int32_t *v, int64_t n, int64_t lo,
                                int64_t hi) {
    for (int64_t i = 0; i < n; i++)
        if (v[i] < lo || v[i] >= hi)
            return fail_out_of_range(name, i, v[i], lo, hi);
    return PMOE_OK;
}

// Every element of the matrix x [rows, cols] is finite; else PMOE_ERR_NON_FINITE naming the
// first offender in row-major order: "logits[3, 5] = nan is not finite (token 3, expert 5)".
// Scans blocks with a branch-free test (vectorises) and searches only a block that fails.
inline int require_finite(const char *name, const float *x, int64_t rows, int64_t cols,
                          const char *row_name, const char *col_name) {
    const int64_t n = rows * cols, block = 1024;
    for (int64_t b = 0; b < n; b += block) {
        const int64_t end = b + block < n ? b + block : n;
        int bad = 0;
        for (int64_t i = b; i < end; i++) bad |= !(std::fabs(x[i]) <= 3.40282347e38f);
        if (!bad) continue;
        for (int64_t i = b;; i++)
            if (!std::isfinite(x[i]))
                return fail_not_finite(name, i / cols, i % cols, x[i], row_name, col_name);
    }
    return PMOE_OK;
}

// exp(x) for loops that must vectorise (std::exp stays a libm call without -ffast-math), by
// Cephes' expf scheme: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-5 polynomial
// (relative error ~1e-7), times 2^n built in the exponent bits as 2^(n/2) * 2^(n - n/2), so
// that exp overflows to inf and underflows to 0 as it should (sigmoid saturates to 0 and 1).
// x is first clamped to [-175, 177] (where exp is already 0 and inf), which keeps n small for
// the bit tricks, by masks on its bits: as signed ints, positive floats above 177 (+inf, +NaN
// too); as unsigned, negative floats below -175. Compares and ternaries here (float or int)
// become branches, GCC's jump threading constant-folds each side, and the loop no longer
// vectorises; masks stay straight-line code. A NaN becomes a number here: callers that must
// propagate NaN multiply by their input (the activations) or reject it first (the router).
inline float exp_approx(float x) {
    uint32_t x_bits;
    std::memcpy(&x_bits, &x, sizeof x_bits);
    const uint32_t max_bits = 0x43310000u, min_bits = 0xC32F0000u; // 177.0f, -175.0f
    const uint32_t above = 0u - uint32_t(int32_t(x_bits) > int32_t(max_bits));
    x_bits = (max_bits & above) | (x_bits & ~above);
    const uint32_t below = 0u - uint32_t(x_bits > min_bits);
    x_bits = (min_bits & below) | (x_bits & ~below);
    std::memcpy(&x, &x_bits, sizeof x);
    // Adding 1.5 * 2^23 rounds x / ln2 to the integer n, which lands in the low mantissa bits.
    const float magic = 12582912.0f;
    const float shifted = x * 1.44269504088896341f + magic;
    int32_t n_int;
    std::memcpy(&n_int, &shifted, sizeof n_int);
    n_int -= 0x4B400000;
    const float n = shifted - magic;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f; // ln2 split in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    // n in [-252, 255]: each half's biased exponent stays in [0, 255] (0 gives 0, 255 gives inf).
    const int32_t half = n_int >> 1;
    const uint32_t bits_lo = uint32_t(half + 127) << 23;
    const uint32_t bits_hi = uint32_t(n_int - half + 127) << 23;
    float scale_lo, scale_hi;
    std::memcpy(&scale_lo, &bits_lo, sizeof scale_lo);
    std::memcpy(&scale_hi, &bits_hi, sizeof scale_hi);
    return p * scale_lo * scale_hi;
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// bf16 <-> f32 with round-to-nearest-even (NaN stays NaN).
inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
// Branch-free (NaN selected with a mask) so that loops storing bf16 rows vectorise.
inline uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    // A signed compare (the masked bits are below 2^31): AVX2 has no unsigned one.
    const uint32_t nan = 0u - uint32_t(int32_t(bits & 0x7fffffffu) > int32_t(0x7f800000));
    return uint16_t((((bits >> 16) | 0x40u) & nan) | (rounded & ~nan));
}

// Element access for kernels templated on the storage type (float, or bf16 bits as uint16_t):
// math runs in f32, and a bf16 store rounds once.
inline float load(float v) { return v; }
inline float load(uint16_t v) { return bf16_to_f32(v); }
template <typename T> T store(float v);
template <> inline float store<float>(float v) { return v; }
template <> inline uint16_t store<uint16_t>(float v) { return f32_to_bf16(v); }

// body(T()) with T the storage type of a checked PMOE_DTYPE_* (float or uint16_t).
template <typename F> int with_dtype(int32_t dtype, F &&body) {
    return dtype == PMOE_DTYPE_F32 ? body(float()) : body(uint16_t());
}

} // namespace pmoe

// The CPU library's implementations of panamoe.h (impl.hpp) are written with pmoe's names.
namespace pmoe_impl {
using namespace pmoe;
} // namespace pmoe_impl
