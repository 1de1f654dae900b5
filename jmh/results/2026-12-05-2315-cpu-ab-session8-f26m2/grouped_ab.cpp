// Grouped bf16 GEMM nn (8 groups of 512 rows, k 1024, n 3584) and a dense bf16 GEMM
// (2048x768x256), A/B of two builds alternated, 9 rounds, median per call.
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>
typedef int (*gnn_f)(int, const int *, int, int, const void *, const void *const *, void *, void *);
typedef int (*gemm_bf16_f)(int, int, int, int, int, float, const void *, int, const void *, int, float, int, void *, int, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    const int G = 8, rows = 512, k = 1024, n = 3584;
    std::vector<uint16_t> a(size_t(G) * rows * k, 0x3f80), c(size_t(G) * rows * n);
    std::vector<std::vector<uint16_t>> w(G, std::vector<uint16_t>(size_t(k) * n, 0x3c00));
    std::vector<const void *> wp(G);
    for (int g = 0; g < G; g++) wp[g] = w[g].data();
    std::vector<int> off(G + 1);
    for (int g = 0; g <= G; g++) off[g] = g * rows;
    std::vector<double> tg[2], td[2];
    for (int r = 0; r < 9; r++) for (int v = 0; v < 2; v++) {
        auto g = (gnn_f)dlsym(l[v], "pmoe_grouped_gemm_nn_bf16");
        auto d = (gemm_bf16_f)dlsym(l[v], "pmoe_gemm_bf16");
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 3; i++) g(G, off.data(), k, n, a.data(), wp.data(), c.data(), nullptr);
        auto t1 = std::chrono::steady_clock::now();
        for (int i = 0; i < 20; i++) d(0, 0, 2048, 768, 256, 1.0f, a.data(), 256, w[0].data(), 768, 0.0f, 1, c.data(), 768, nullptr);
        auto t2 = std::chrono::steady_clock::now();
        tg[v].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / 3);
        td[v].push_back(std::chrono::duration<double, std::milli>(t2 - t1).count() / 20);
    }
    for (int v = 0; v < 2; v++) { std::sort(tg[v].begin(), tg[v].end()); std::sort(td[v].begin(), td[v].end()); }
    printf("grouped nn bf16 8x512x3584x1024: A %.2f B %.2f ms; dense bf16 2048x768x256: A %.3f B %.3f ms\n", tg[0][4], tg[1][4], td[0][4], td[1][4]);
}
