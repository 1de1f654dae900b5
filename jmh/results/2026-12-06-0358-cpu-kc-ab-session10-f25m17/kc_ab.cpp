// Dense GEMMs, two builds of libpanamoe_cpu.so alternated call by call; median ms of each.
// usage: kc_ab LIB_A LIB_B f32|bf16 M N K REPS [TA]
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
typedef int (*g32_f)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int, void *);
typedef int (*g16_f)(int, int, int, int, int, float, const void *, int, const void *, int, float, int, void *, int, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    const bool bf = !strcmp(argv[3], "bf16");
    int m = atoi(argv[4]), n = atoi(argv[5]), k = atoi(argv[6]), reps = atoi(argv[7]), ta = argc > 8 ? atoi(argv[8]) : 0;
    std::vector<uint16_t> a16(size_t(m) * k, 0x3f80), b16(size_t(k) * n, 0x3f80);
    std::vector<float> a(size_t(m) * k, 1.0f), b(size_t(k) * n, 1.0f), c(size_t(m) * n);
    std::vector<double> t[2];
    for (int r = 0; r < reps; r++) for (int v = 0; v < 2; v++) {
        auto t0 = std::chrono::steady_clock::now();
        if (bf) ((g16_f)dlsym(l[v], "pmoe_gemm_bf16"))(ta, 0, m, n, k, 1.0f, a16.data(), ta ? m : k, b16.data(), n, 0.0f, ta ? 0 : 1, c.data(), n, nullptr);
        else ((g32_f)dlsym(l[v], "pmoe_gemm"))(ta, 0, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), n, 0.0f, c.data(), n, nullptr);
        t[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    for (int v = 0; v < 2; v++) std::sort(t[v].begin(), t[v].end());
    double fl = 2.0 * m * n * k, ta_ = t[0][reps / 2], tb = t[1][reps / 2];
    printf("%s %dx%dx%d%s: A %.3f ms (%.0f GF/s) B %.3f ms (%.0f GF/s) B/A %.3f\n", argv[3], m, n, k, ta ? " tn" : "", ta_, fl / ta_ / 1e6, tb, fl / tb / 1e6, tb / ta_);
}
