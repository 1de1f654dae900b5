// One large GEMM, nn, A/B of two builds of libpanamoe_cpu.so loaded side by side (dlopen
// RTLD_LOCAL), alternating, 8 calls each, median and min. Operands constant (the time does not
// depend on the values).
// Usage: big_ab LIB_A LIB_B f32|bf16 M K N
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
typedef int (*gemm16_t)(int, int, int, int, int, float, const void *, int, const void *, int, float, int, void *, int, void *);
typedef int (*gemm32_t)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    if (!l[0] || !l[1]) { printf("dlopen: %s\n", dlerror()); return 1; }
    const bool bf16 = !strcmp(argv[3], "bf16");
    const int M = atoi(argv[4]), K = atoi(argv[5]), N = atoi(argv[6]);
    std::vector<float> a(size_t(M) * K, 1.0f), b(size_t(K) * N, 0.01f), c(size_t(M) * N);
    std::vector<uint16_t> a16(a.size(), 0x3f80), b16(b.size(), 0x3c00), c16(c.size());
    std::vector<double> t[2];
    for (int r = 0; r < 8; r++) for (int v = 0; v < 2; v++) {
        auto t0 = std::chrono::steady_clock::now();
        if (bf16) ((gemm16_t)dlsym(l[v], "pmoe_gemm_bf16"))(0, 0, M, N, K, 1, a16.data(), K, b16.data(), N, 0, 1, c16.data(), N, nullptr);
        else ((gemm32_t)dlsym(l[v], "pmoe_gemm"))(0, 0, M, N, K, 1, a.data(), K, b.data(), N, 0, c.data(), N, nullptr);
        t[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    for (int v = 0; v < 2; v++) {
        std::sort(t[v].begin(), t[v].end());
        printf("%s median %.2f ms (%.0f GFLOP/s) min %.2f\n", v ? "B" : "A", t[v][4], 2.0 * M * N * K / t[v][4] / 1e6, t[v][0]);
    }
}
