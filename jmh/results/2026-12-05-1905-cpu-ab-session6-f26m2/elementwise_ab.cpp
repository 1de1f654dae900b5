// Elementwise kernels of the small step, f32 vs bf16, A/B of two builds (dlopen RTLD_LOCAL).
// Per kernel and dtype: alternating A and B, 15 rounds of 5 calls, median per call (ms).
// Usage: elementwise_ab LIB_A LIB_B [dtype 0|1 (-1: both)] [kernel index (-1: all)]
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>
template <class T> struct Al { typedef T value_type; Al() = default; template <class U> Al(const Al<U> &) {} T *allocate(size_t n) { return (T *)aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64); } void deallocate(T *p, size_t) { free(p); } bool operator==(const Al &) const { return true; } };
template <class T> using avec = std::vector<T, Al<T>>;
#include <cstdlib>
typedef int (*act_f)(int, int, int, int, const void *, void *, void *);
typedef int (*actb_f)(int, int, int, int, const void *, const void *, void *, void *);
typedef int (*lnf_f)(int, int, int, float, const void *, const void *, const void *, void *, float *, float *, void *);
typedef int (*lnb_f)(int, int, int, const void *, const void *, const float *, const float *, const void *, void *, float *, float *, void *);
typedef int (*bias_f)(int, int, int, const void *, void *, void *);
typedef int (*add_f)(int, int64_t, const void *, const void *, void *, void *);
typedef int (*acc_f)(int, int64_t, const void *, void *, void *);
typedef int (*bb_f)(int, int, int, const void *, float *, void *);
typedef int (*adam_f)(int64_t, float *, const float *, float *, float *, float, float, float, float, float, int, int, void *, void *);
int main(int argc, char **argv) {
    void *lib[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    if (!lib[0] || !lib[1]) { printf("dlopen: %s\n", dlerror()); return 1; }
    std::mt19937 g(1); std::normal_distribution<float> nd;
    const size_t big = 9600000;
    avec<float> a(big), b(big), c(big), d(big), e(big), mean(4096), rstd(4096), dw(1024), db(1024);
    for (auto &v : a) v = nd(g); for (auto &v : b) v = nd(g); for (auto &v : d) v = 0.01f; for (auto &v : e) v = 0.01f;
    avec<uint16_t> a16(big), b16(big), c16(big);
    auto tb = [](float f) { uint32_t x; memcpy(&x, &f, 4); return uint16_t(x >> 16); };
    for (size_t i = 0; i < big; i++) a16[i] = tb(a[i]), b16[i] = tb(b[i]);
    const int only_dt = argc > 3 ? atoi(argv[3]) : -1, only_k = argc > 4 ? atoi(argv[4]) : -1;
    for (int dt = 0; dt < 2; dt++) {
        if (only_dt >= 0 && dt != only_dt) continue;
        const void *x = dt ? (void *)a16.data() : (void *)a.data(), *y = dt ? (void *)b16.data() : (void *)b.data();
        void *o = dt ? (void *)c16.data() : (void *)c.data();
        const char *name = dt ? "bf16" : "f32 ";
        std::vector<std::pair<const char *, std::function<void(void *)>>> ks = {
            {"gelu fwd 2048x1024", [&](void *l) { ((act_f)dlsym(l, "pmoe_activation_forward"))(dt, 0, 2048, 1024, x, o, nullptr); }},
            {"gelu bwd 2048x1024", [&](void *l) { ((actb_f)dlsym(l, "pmoe_activation_backward"))(dt, 0, 2048, 1024, x, y, o, nullptr); }},
            {"ln fwd 2048x256   ", [&](void *l) { ((lnf_f)dlsym(l, "pmoe_layernorm_forward"))(dt, 2048, 256, 1e-5f, x, y, y, o, mean.data(), rstd.data(), nullptr); }},
            {"ln bwd 2048x256   ", [&](void *l) { ((lnb_f)dlsym(l, "pmoe_layernorm_backward"))(dt, 2048, 256, x, y, mean.data(), rstd.data(), y, o, dw.data(), db.data(), nullptr); }},
            {"bias add 2048x768 ", [&](void *l) { ((bias_f)dlsym(l, "pmoe_bias_add"))(dt, 2048, 768, y, o, nullptr); }},
            {"bias bwd 2048x768 ", [&](void *l) { ((bb_f)dlsym(l, "pmoe_bias_backward"))(dt, 2048, 768, y, dw.data(), nullptr); }},
            {"add 2048x256      ", [&](void *l) { ((add_f)dlsym(l, "pmoe_add"))(dt, 2048 * 256, x, y, o, nullptr); }},
            {"accumulate 2048x256", [&](void *l) { ((acc_f)dlsym(l, "pmoe_accumulate"))(dt, 2048 * 256, x, o, nullptr); }},
            {"adamw 9.5M        ", [&](void *l) { ((adam_f)dlsym(l, "pmoe_adamw_step"))(9500000, a.data(), b.data(), d.data(), e.data(), 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 5, dt, dt ? (void *)c16.data() : nullptr, nullptr); }},
        };
        int ki = -1;
        for (auto &k : ks) {
            if (++ki, only_k >= 0 && ki != only_k) continue;
            std::vector<double> t[2];
            for (int r = 0; r < 15; r++) for (int v = 0; v < 2; v++) {
                auto t0 = std::chrono::steady_clock::now();
                for (int it = 0; it < 5; it++) k.second(lib[v]);
                t[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5);
            }
            for (int v = 0; v < 2; v++) std::sort(t[v].begin(), t[v].end());
            printf("%s %s A %.3f  B %.3f ms  B/A %.3f\n", name, k.first, t[0][7], t[1][7], t[1][7] / t[0][7]);
        }
    }
}
