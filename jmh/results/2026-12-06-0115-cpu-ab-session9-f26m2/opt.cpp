#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
typedef int (*adam_f)(int64_t, float *, const float *, float *, float *, float, float, float, float, float, int32_t, int32_t, void *, void *);
typedef int (*scale_f)(int32_t, int64_t, float, void *, void *);
typedef int (*ss_f)(int64_t, const float *, double *, void *);
int main(int argc, char **argv) {
    void *l = dlopen(argv[1], RTLD_NOW);
    const int64_t n = 9600000; const int chunks = 160; // ~ small's parameter count, in 160 tensors
    std::vector<float> p(n, 0.1f), g(n, 0.01f), m(n), v(n); std::vector<uint16_t> w(n);
    auto adam = (adam_f)dlsym(l, "pmoe_adamw_step"); auto scale = (scale_f)dlsym(l, "pmoe_scale"); auto ss = (ss_f)dlsym(l, "pmoe_sum_squares");
    std::vector<double> ta, ts, tq;
    for (int r = 0; r < 15; r++) {
        auto t0 = std::chrono::steady_clock::now();
        double s = 0, x;
        for (int c = 0; c < chunks; c++) { int64_t o = n / chunks * c; ss(n / chunks, g.data() + o, &x, nullptr); s += x; }
        auto t1 = std::chrono::steady_clock::now();
        for (int c = 0; c < chunks; c++) { int64_t o = n / chunks * c; scale(0, n / chunks, 1.0f, g.data() + o, nullptr); }
        auto t2 = std::chrono::steady_clock::now();
        for (int c = 0; c < chunks; c++) { int64_t o = n / chunks * c; adam(n / chunks, p.data() + o, g.data() + o, m.data() + o, v.data() + o, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, r + 1, 1, w.data() + o, nullptr); }
        auto t3 = std::chrono::steady_clock::now();
        tq.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        ts.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
        ta.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
    }
    std::sort(ta.begin(), ta.end()); std::sort(ts.begin(), ts.end()); std::sort(tq.begin(), tq.end());
    printf("sum_squares %.2f ms, scale %.2f ms, adamw(bf16 copy) %.2f ms\n", tq[7], ts[7], ta[7]);
}
