// small's expert GEMMs (8 experts, 4096 routed rows, hidden 256, ffn 512, bf16), ragged loads,
// fwd nn x2, bwd tn x2 (f32 out, beta 1) + nt x2; A/B of two builds alternated; median per layer pass.
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
typedef int (*gnn_f)(int, const int *, int, int, const void *, const void *const *, void *, void *);
typedef int (*gtn_f)(int, const int *, int, int, const void *, const void *, float, int, void *const *, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    const int G = 8, H = 256, F = 512, rounds = argc > 3 ? atoi(argv[3]) : 15;
    int loads[G] = {700, 350, 600, 420, 510, 380, 650, 486};
    if (argc > 4) for (int g = 0; g < G; g++) loads[g] = 512;
    std::vector<int> off(G + 1, 0);
    for (int g = 0; g < G; g++) off[g + 1] = off[g] + loads[g];
    const int R = off[G];
    std::vector<uint16_t> x(size_t(R) * H, 0x3f80), h(size_t(R) * F, 0x3f80), y(size_t(R) * H), gh(size_t(R) * F), gx(size_t(R) * H);
    std::vector<std::vector<uint16_t>> w1(G, std::vector<uint16_t>(size_t(H) * F, 0x3c00)), w2(G, std::vector<uint16_t>(size_t(F) * H, 0x3c00));
    std::vector<std::vector<float>> d1(G, std::vector<float>(size_t(H) * F)), d2(G, std::vector<float>(size_t(F) * H));
    std::vector<const void *> p1(G), p2(G); std::vector<void *> q1(G), q2(G);
    for (int g = 0; g < G; g++) { p1[g] = w1[g].data(); p2[g] = w2[g].data(); q1[g] = d1[g].data(); q2[g] = d2[g].data(); }
    std::vector<double> tf[2], tb[2];
    for (int r = 0; r < rounds; r++) for (int v = 0; v < 2; v++) {
        auto nn = (gnn_f)dlsym(l[v], "pmoe_grouped_gemm_nn_bf16");
        auto nt = (gnn_f)dlsym(l[v], "pmoe_grouped_gemm_nt_bf16");
        auto tn = (gtn_f)dlsym(l[v], "pmoe_grouped_gemm_tn_bf16");
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 5; i++) { nn(G, off.data(), H, F, x.data(), p1.data(), h.data(), nullptr); nn(G, off.data(), F, H, h.data(), p2.data(), y.data(), nullptr); }
        auto t1 = std::chrono::steady_clock::now();
        for (int i = 0; i < 5; i++) {
            tn(G, off.data(), F, H, h.data(), y.data(), 1.0f, 0, q2.data(), nullptr);
            nt(G, off.data(), H, F, y.data(), p2.data(), gh.data(), nullptr);
            tn(G, off.data(), H, F, x.data(), gh.data(), 1.0f, 0, q1.data(), nullptr);
            nt(G, off.data(), F, H, gh.data(), p1.data(), gx.data(), nullptr);
        }
        auto t2 = std::chrono::steady_clock::now();
        tf[v].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / 5);
        tb[v].push_back(std::chrono::duration<double, std::milli>(t2 - t1).count() / 5);
    }
    for (int v = 0; v < 2; v++) { std::sort(tf[v].begin(), tf[v].end()); std::sort(tb[v].begin(), tb[v].end()); }
    double ff = 2.0 * R * H * F * 2, fb = 2 * ff;
    printf("experts %s: fwd A %.3f B %.3f ms (%.0f / %.0f GF/s); bwd A %.3f B %.3f ms (%.0f / %.0f GF/s)\n", argc > 4 ? "balanced" : "ragged",
           tf[0][rounds/2], tf[1][rounds/2], ff / tf[0][rounds/2] / 1e6, ff / tf[1][rounds/2] / 1e6,
           tb[0][rounds/2], tb[1][rounds/2], fb / tb[0][rounds/2] / 1e6, fb / tb[1][rounds/2] / 1e6);
}
