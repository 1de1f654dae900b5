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

/* One level's loop: N accumulators a[i] = STEP(a[i]), unrolled so each stays in a register
 * (the pragma covers the largest N), then summed so the work cannot be dropped. */
#define CHAINS(NAME, TARGET, V, N, SET1, STEP, ADD, SUM)                     \
    __attribute__((target(TARGET))) static float NAME(long iterations) {     \
        V a[N];                                                              \
        for (int i = 0; i < N; i++) a[i] = SET1((float)i);                   \
        for (long it = 0; it < iterations; it++) {                           \
            _Pragma("GCC unroll 24")                                         \
            for (int i = 0; i < N; i++) a[i] = STEP(a[i]);                   \
        }                                                                    \
        V s = a[0];                                                          \
        for (int i = 1; i < N; i++) s = ADD(s, a[i]);                        \
        return SUM(s);                                                       \
    }

/* FMA steps: a * b + c with b < 1 converges to c / (1 - b): no overflow, no denormals, whatever the count. */
__attribute__((target("avx2,fma"))) static inline __m256 fma_avx2(__m256 a) {
    return _mm256_fmadd_ps(a, _mm256_set1_ps(0.999f), _mm256_set1_ps(0.001f));
}
__attribute__((target("avx2,fma"))) static inline float sum_avx2(__m256 s) {
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}
__attribute__((target("avx512f"))) static inline __m512 fma_avx512(__m512 a) {
    return _mm512_fmadd_ps(a, _mm512_set1_ps(0.999f), _mm512_set1_ps(0.001f));
}
/* Pairs of bf16 2^-12 (0x3980): each step adds 2^-23 per lane, so 2^30 steps stay finite. */
__attribute__((target("avx512f,avx512bf16"))) static inline __m512 dot_bf16(__m512 a) {
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3980);
    return _mm512_dpbf16_ps(a, x, x);
}

CHAINS(chains_avx2, "avx2,fma", __m256, 12, _mm256_set1_ps, fma_avx2, _mm256_add_ps, sum_avx2)
CHAINS(chains_avx512, "avx512f", __m512, 24, _mm512_set1_ps, fma_avx512, _mm512_add_ps, _mm512_reduce_add_ps)
CHAINS(chains_avx512_bf16, "avx512f,avx512bf16", __m512, 24, _mm512_set1_ps, dot_bf16, _mm512_add_ps,
       _mm512_reduce_add_ps)

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
