// Times the MoE layer's small per-token kernels at small's shape (2048 tokens, 8 experts, top-2),
// and the finiteness check of its input (2048 x 256 bf16).
#include <dlfcn.h>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <random>
#include <vector>
#include <algorithm>
struct cfg { int32_t tokens, experts, top_k, score_func, renormalize, reserved; };
typedef int (*zf)(int, int, const float *, float, float *, void *);
typedef int (*zb)(int, int, const float *, float, float, float *, void *);
typedef int (*af)(int, int, int, const float *, const int32_t *, float, float *, int32_t *, void *);
typedef int (*rf)(const cfg *, const float *, float *, float *, int32_t *, void *);
typedef int (*nf)(int, int64_t, const void *, int64_t *, void *);
template <class F> double time_us(F f) {
    double best = 1e9;
    for (int r = 0; r < 30; r++) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 10; i++) f();
        best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / 10);
    }
    return best;
}
int main(int argc, char **argv) {
    void *l = dlopen(argv[1], RTLD_NOW);
    int T = 2048, E = 8, K = 2;
    std::mt19937 g(1); std::normal_distribution<float> nd;
    std::vector<float> logits(T * E), scores(T * E), tw(T * K), grad(T * E);
    for (auto &v : logits) v = nd(g);
    std::vector<int32_t> ids(T * K), counts(E);
    float loss;
    cfg c{T, E, K, 0, 1, 0};
    auto router = (rf)dlsym(l, "pmoe_router_forward");
    auto zfw = (zf)dlsym(l, "pmoe_z_loss_forward");
    auto zbw = (zb)dlsym(l, "pmoe_z_loss_backward");
    auto afw = (af)dlsym(l, "pmoe_aux_loss_forward");
    printf("router forward %.1f us\n", time_us([&] { router(&c, logits.data(), scores.data(), tw.data(), ids.data(), nullptr); }));
    printf("aux loss forward %.1f us\n", time_us([&] { afw(T, E, K, scores.data(), ids.data(), 0.01f, &loss, counts.data(), nullptr); }));
    printf("z loss forward %.1f us\n", time_us([&] { zfw(T, E, logits.data(), 0.001f, &loss, nullptr); }));
    printf("z loss backward %.1f us\n", time_us([&] { zbw(T, E, logits.data(), 0.001f, 1.f, grad.data(), nullptr); }));
    auto find = (nf)dlsym(l, "pmoe_find_nonfinite");
    std::vector<uint16_t> x(size_t(T) * 256, 0x3f80);
    int64_t first;
    printf("find_nonfinite 2048 x 256 bf16 %.1f us\n", time_us([&] { find(1, int64_t(x.size()), x.data(), &first, nullptr); }));
}
