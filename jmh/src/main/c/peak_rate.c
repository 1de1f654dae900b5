/* The machine's arithmetic limit for PeakRateBenchmark: independent chains of one vector
 * instruction per ISA level (AVX2 256-bit FMA, AVX-512 FMA, AVX-512 BF16 vdpbf16ps), each
 * compiled for its own target so the library loads on any x86-64 CPU. The chains are
 * independent so that the core's throughput, not an instruction's latency, bounds the rate:
 * AVX2 keeps 12 accumulators (16 ymm registers, two hold the operands), AVX-512 keeps 24 (of 32),
 * enough to cover a 6-cycle latency on two pipes with margin.
 *
 * Not part of libpanamoe_cpu: a benchmark's measuring stick, not a kernel (no CUDA twin). */
#include <immintrin.h>
#include <stddef.h>

/* Level numbers shared with PeakRateBenchmark.Level (its ordinal). */
enum { LEVEL_AVX2 = 0, LEVEL_AVX512 = 1, LEVEL_AVX512_BF16 = 2 };

/* The CPU feature a level needs that this CPU (and its OS, which must save the wide registers)
 * lacks, or NULL when the level can run. libgcc's feature bits already include the XGETBV check. */
const char *pmoe_peak_missing(int level) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) return "avx2";
    if (!__builtin_cpu_supports("fma")) return "fma";
    if (level == LEVEL_AVX2) return NULL;
    if (!__builtin_cpu_supports("avx512f")) return "avx512f";
    if (level == LEVEL_AVX512) return NULL;
    if (!__builtin_cpu_supports("avx512bf16")) return "avx512_bf16";
    if (level == LEVEL_AVX512_BF16) return NULL;
    return "a known level (0 avx2, 1 avx512, 2 avx512_bf16)";
}

/* FLOPs of one iteration of a level's loop: accumulators x lanes x 2 (multiply and add);
 * vdpbf16ps does two bf16 products and their sum into each fp32 lane, 4 FLOPs per lane. */
double pmoe_peak_flops_per_iteration(int level) {
    switch (level) {
        case LEVEL_AVX2: return 12.0 * 8 * 2;
        case LEVEL_AVX512: return 24.0 * 16 * 2;
        case LEVEL_AVX512_BF16: return 24.0 * 16 * 4;
        default: return -1;
    }
}

/* a = a * b + c with b < 1 converges to c / (1 - b): no overflow, no denormals, whatever the count. */
__attribute__((target("avx2,fma"))) static float chains_avx2(long iterations) {
    __m256 a[12];
    const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iterations; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    return lanes[0];
}

__attribute__((target("avx512f"))) static float chains_avx512(long iterations) {
    __m512 a[24];
    const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iterations; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

/* Pairs of bf16 2^-12 (0x3980): each iteration adds 2^-23 per lane, so 2^30 iterations stay finite. */
__attribute__((target("avx512f,avx512bf16"))) static float chains_avx512_bf16(long iterations) {
    __m512 a[24];
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3980), c = (__m512bh)_mm512_set1_epi16(0x3980);
    for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iterations; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) a[i] = _mm512_dpbf16_ps(a[i], b, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

/* Runs `iterations` loop iterations of the level's chains and returns their sum (so the work
 * cannot be dropped), or NaN when the level cannot run here or iterations < 0: the caller checks
 * pmoe_peak_missing first, this only guards against executing an instruction the CPU lacks. */
float pmoe_peak_run(int level, long iterations) {
    if (iterations < 0 || pmoe_peak_missing(level) != NULL) return __builtin_nanf("");
    switch (level) {
        case LEVEL_AVX2: return chains_avx2(iterations);
        case LEVEL_AVX512: return chains_avx512(iterations);
        default: return chains_avx512_bf16(iterations);
    }
}
