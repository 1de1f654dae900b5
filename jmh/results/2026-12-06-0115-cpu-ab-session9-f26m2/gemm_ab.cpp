// Small's linear GEMMs (bf16 or f32): forward nn, dx nt, dW tn (beta 1, f32 out), A/B of two builds (dlopen), alternating.
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
typedef int (*g16_f)(int, int, int, int, int, float, const void *, int, const void *, int, float, int, void *, int, void *);
typedef int (*g32_f)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    if (!l[0] || !l[1]) { printf("dlopen: %s\n", dlerror()); return 1; }
    int bf = atoi(argv[3]), rounds = argc > 4 ? atoi(argv[4]) : 15;
    const int M = 2048;
    struct S { const char *name; int ta, tb, m, n, k; float beta; int out16; };
    // fwd: x[M,K] W[K,N]; dx: dOut[M,N] W^T; dW: x^T dOut
    std::vector<S> shapes = {
        {"fwd qkv 2048x768x256", 0, 0, M, 768, 256, 0, 1}, {"fwd fc1 2048x1024x256", 0, 0, M, 1024, 256, 0, 1},
        {"fwd fc2 2048x256x1024", 0, 0, M, 256, 1024, 0, 1}, {"fwd proj 2048x256x256", 0, 0, M, 256, 256, 0, 1},
        {"dx qkv 2048x256x768", 0, 1, M, 256, 768, 0, 1}, {"dx fc1 2048x256x1024", 0, 1, M, 256, 1024, 0, 1},
        {"dx fc2 2048x1024x256", 0, 1, M, 1024, 256, 0, 1},
        {"dW qkv 256x768x2048", 1, 0, 256, 768, M, 1, 0}, {"dW fc1 256x1024x2048", 1, 0, 256, 1024, M, 1, 0},
        {"dW fc2 1024x256x2048", 1, 0, 1024, 256, M, 1, 0}, {"dW proj 256x256x2048", 1, 0, 256, 256, M, 1, 0}};
    std::mt19937 g(1); std::uniform_int_distribution<int> u(0x3c00, 0x3f80);
    std::vector<uint16_t> a16(4 << 20), b16(4 << 20); std::vector<float> a32(4 << 20), b32(4 << 20), c(4 << 20);
    for (size_t i = 0; i < a16.size(); i++) { a16[i] = u(g); b16[i] = u(g); uint32_t x = uint32_t(a16[i]) << 16; memcpy(&a32[i], &x, 4); x = uint32_t(b16[i]) << 16; memcpy(&b32[i], &x, 4); }
    double tot[2] = {0, 0};
    for (const S &s : shapes) {
        std::vector<double> t[2];
        int lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
        for (int r = 0; r < rounds; r++) for (int v = 0; v < 2; v++) {
            auto f16 = (g16_f)dlsym(l[v], "pmoe_gemm_bf16"); auto f32 = (g32_f)dlsym(l[v], "pmoe_gemm");
            auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < 10; i++) {
                if (bf) f16(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a16.data(), lda, b16.data(), ldb, s.beta, s.out16 ? 1 : 0, c.data(), s.n, nullptr);
                else f32(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a32.data(), lda, b32.data(), ldb, s.beta, c.data(), s.n, nullptr);
            }
            t[v].push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / 10);
        }
        for (int v = 0; v < 2; v++) std::sort(t[v].begin(), t[v].end());
        double fl = 2.0 * s.m * s.n * s.k;
        printf("%-24s A %8.1f us (%5.0f GF/s)  B %8.1f us (%5.0f GF/s)  B/A %.3f\n", s.name, t[0][rounds/2], fl / t[0][rounds/2] / 1e3, t[1][rounds/2], fl / t[1][rounds/2] / 1e3, t[1][rounds/2] / t[0][rounds/2]);
        tot[0] += t[0][rounds/2]; tot[1] += t[1][rounds/2];
    }
    printf("sum A %.1f us  B %.1f us  B/A %.3f\n", tot[0], tot[1], tot[1] / tot[0]);
}
