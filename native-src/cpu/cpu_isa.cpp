// Run-time instruction-set dispatch: the CPU's features are read once at load (cpuid, and
// XGETBV for the registers the OS saves on a context switch: a CPU may have AVX-512 that the
// OS does not enable), the highest usable level is chosen, and PMOE_CPU_ISA may lower it.
// Kernels read the level with cpu_isa_level(); only code compiled for a level (gemm_avx512.cpp,
// activation_avx512.cpp) uses instructions beyond the library's AVX2 baseline, and only when that
// level is in use.
#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.hpp"

namespace pmoe {
namespace {

struct CpuFeatures {
    uint32_t bits = 0;
    std::string missing[4]; // missing[level]: what the CPU lacks for that level ("" if nothing)
};

uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t(hi) << 32) | lo;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0, a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71 = 0,
             c71 = 0, d71 = 0;
    __get_cpuid(1, &a1, &b1, &c1, &d1);
    const unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf >= 7) {
        __get_cpuid_count(7, 0, &a7, &b7, &c7, &d7);
        __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
    }
    const bool osxsave = c1 & (1u << 27);
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    auto lacks = [](std::string &list, bool present, const char *name) {
        if (present) return;
        list += list.empty() ? "" : ", ";
        list += name;
    };
    std::string avx2, avx512, bf16;
    lacks(avx2, c1 & (1u << 28), "avx");
    lacks(avx2, b7 & (1u << 5), "avx2");
    lacks(avx2, c1 & (1u << 12), "fma");
    lacks(avx2, (xcr0 & 0x6) == 0x6, "OS support for ymm state (XCR0)");
    lacks(avx512, b7 & (1u << 16), "avx512f");
    lacks(avx512, b7 & (1u << 17), "avx512dq");
    lacks(avx512, b7 & (1u << 30), "avx512bw");
    lacks(avx512, b7 & (1u << 31), "avx512vl");
    lacks(avx512, (xcr0 & 0xe6) == 0xe6, "OS support for zmm and opmask state (XCR0)");
    lacks(bf16, a71 & (1u << 5), "avx512_bf16");
    if (avx2.empty()) f.bits |= PMOE_CPU_AVX2_FMA;
    if (avx512.empty()) f.bits |= PMOE_CPU_AVX512;
    if (bf16.empty()) f.bits |= PMOE_CPU_AVX512_BF16;
    // Each level needs the ones below it: list what is missing from all of them.
    auto join = [](const std::string &x, const std::string &y) {
        return x.empty() ? y : y.empty() ? x : x + ", " + y;
    };
    f.missing[PMOE_ISA_AVX2] = avx2;
    f.missing[PMOE_ISA_AVX512] = join(avx2, avx512);
    f.missing[PMOE_ISA_AVX512_BF16] = join(f.missing[PMOE_ISA_AVX512], bf16);
    return f;
}

const char *const LEVEL_NAMES[] = {"", "avx2", "avx512", "avx512_bf16"};

struct IsaState {
    CpuFeatures features;
    int detected = 0;             // highest level the CPU and OS allow (0: not even AVX2)
    std::atomic<int> level{0};    // the level in use
    std::string env_error;        // why PMOE_CPU_ISA could not be applied ("" if it was)
};

IsaState &state() {
    static IsaState s;
    static const bool initialised = [] {
        IsaState &st = s;
        st.features = detect();
        for (int l = PMOE_ISA_AVX2; l <= PMOE_ISA_AVX512_BF16; l++)
            if (st.features.missing[l].empty()) st.detected = l;
        int level = st.detected;
        const char *env = std::getenv("PMOE_CPU_ISA");
        if (env && *env) {
            int asked = 0;
            for (int l = PMOE_ISA_AVX2; l <= PMOE_ISA_AVX512_BF16; l++)
                if (std::strcmp(env, LEVEL_NAMES[l]) == 0) asked = l;
            if (asked == 0)
                st.env_error = std::string("PMOE_CPU_ISA=") + env +
                               " is not a level: use avx2, avx512 or avx512_bf16";
            else if (asked > st.detected)
                st.env_error = std::string("PMOE_CPU_ISA=") + env + ": CPU lacks " +
                               st.features.missing[asked];
            else
                level = asked;
        }
        st.level.store(level);
        return true;
    }();
    (void)initialised;
    return s;
}

// Reads the features while the library loads, so the first kernel call does not pay for it.
[[maybe_unused]] const bool loaded = (state(), true);

} // namespace

int cpu_isa_level() { return state().level.load(std::memory_order_relaxed); }

} // namespace pmoe

using namespace pmoe;

extern "C" {

PMOE_API int pmoe_cpu_isa(int32_t *level_in_use, uint32_t *features_found) {
    clear_error();
    PMOE_CHECK(require_non_null("level_in_use", level_in_use));
    PMOE_CHECK(require_non_null("features_found", features_found));
    IsaState &s = state();
    *level_in_use = s.level.load();
    *features_found = s.features.bits;
    if (!s.env_error.empty()) return fail(PMOE_ERR_INVALID_ARGUMENT, "%s", s.env_error.c_str());
    return PMOE_OK;
}

PMOE_API int pmoe_set_cpu_isa(int32_t level) {
    clear_error();
    if (level < PMOE_ISA_AVX2 || level > PMOE_ISA_AVX512_BF16)
        return fail(PMOE_ERR_INVALID_ARGUMENT,
                    "level = %d must be PMOE_ISA_AVX2 (1), PMOE_ISA_AVX512 (2) or "
                    "PMOE_ISA_AVX512_BF16 (3)",
                    level);
    IsaState &s = state();
    if (level > s.detected)
        return fail(PMOE_ERR_UNSUPPORTED, "level = %d (%s): CPU lacks %s", level,
                    LEVEL_NAMES[level], s.features.missing[level].c_str());
    s.env_error.clear();
    s.level.store(level);
    return PMOE_OK;
}

} // extern "C"
