// A/B of two builds of libpanamoe_cpu.so in one process (dlopen RTLD_LOCAL): the dense linears
// of `small` (N = 2048): fwd x W (nn), dx = dOut W^T (nt), dW += x^T dOut (tn, f32 C).
// Per op: alternating A and B, 15 rounds of 5 calls, min and median of the per-call time.
// Usage: linears_ab LIB_A LIB_B bf16|f32
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <random>
#include <vector>
typedef int (*gemm16_t)(int, int, int, int, int, float, const void *, int, const void *, int, float, int, void *, int, void *);
typedef int (*gemm32_t)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int, void *);
int main(int argc, char **argv) {
    void *la = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), *lb = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!la || !lb) { printf("dlopen: %s\n", dlerror()); return 1; }
    bool bf16 = !strcmp(argv[3], "bf16");
    gemm16_t g16[2] = {(gemm16_t)dlsym(la, "pmoe_gemm_bf16"), (gemm16_t)dlsym(lb, "pmoe_gemm_bf16")};
    gemm32_t g32[2] = {(gemm32_t)dlsym(la, "pmoe_gemm"), (gemm32_t)dlsym(lb, "pmoe_gemm")};
    const int N = 2048;
    int shapes[][2] = {{256, 768}, {256, 256}, {256, 1024}, {1024, 256}};
    std::mt19937 g(1); std::normal_distribution<float> nd;
    std::vector<float> x(N * 1024), w(1024 * 1024), y(N * 1024), dw(1024 * 1024), o(N * 1024);
    for (auto &v : x) v = nd(g); for (auto &v : w) v = nd(g) * 0.05f; for (auto &v : y) v = nd(g);
    std::vector<uint16_t> x16(x.size()), w16(w.size()), y16(y.size()), o16(N * 1024);
    auto tb = [](float f) { uint32_t b; memcpy(&b, &f, 4); return uint16_t(b >> 16); };
    for (size_t i = 0; i < x.size(); i++) x16[i] = tb(x[i]);
    for (size_t i = 0; i < w.size(); i++) w16[i] = tb(w[i]);
    for (size_t i = 0; i < y.size(); i++) y16[i] = tb(y[i]);
    double sum_med[2] = {0, 0};
    for (auto &s : shapes) {
        int in = s[0], out = s[1];
        for (int op = 0; op < 3; op++) {
            std::vector<double> t[2];
            for (int r = 0; r < 15; r++) for (int v = 0; v < 2; v++) {
                auto t0 = std::chrono::steady_clock::now();
                for (int it = 0; it < 5; it++) {
                    if (bf16) {
                        if (op == 0) g16[v](0, 0, N, out, in, 1, x16.data(), in, w16.data(), out, 0, 1, o16.data(), out, nullptr);
                        else if (op == 1) g16[v](0, 1, N, in, out, 1, y16.data(), out, w16.data(), out, 0, 1, o16.data(), in, nullptr);
                        else g16[v](1, 0, in, out, N, 1, x16.data(), in, y16.data(), out, 1, 0, dw.data(), out, nullptr);
                    } else {
                        if (op == 0) g32[v](0, 0, N, out, in, 1, x.data(), in, w.data(), out, 0, o.data(), out, nullptr);
                        else if (op == 1) g32[v](0, 1, N, in, out, 1, y.data(), out, w.data(), out, 0, o.data(), in, nullptr);
                        else g32[v](1, 0, in, out, N, 1, x.data(), in, y.data(), out, 1, dw.data(), out, nullptr);
                    }
                }
                t[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5);
            }
            double med[2], mn[2];
            for (int v = 0; v < 2; v++) { std::sort(t[v].begin(), t[v].end()); med[v] = t[v][7]; mn[v] = t[v][0]; sum_med[v] += med[v]; }
            printf("%s %4dx%-4d %s  A min %.3f med %.3f   B min %.3f med %.3f   B/A med %.3f\n", argv[3], in, out,
                   op == 0 ? "fwd" : op == 1 ? "dx " : "dW ", mn[0], med[0], mn[1], med[1], med[1] / med[0]);
        }
    }
    printf("sum of medians: A %.3f B %.3f ms  B/A %.3f\n", sum_med[0], sum_med[1], sum_med[1] / sum_med[0]);
}
