// GeLU forward/backward at small's MLP width (2048 x 1024), f32 and bf16: A/B of two builds
// (dlopen), alternating rounds of 20 calls, median per call; outputs compared bit for bit.
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
typedef int (*fwd_f)(int, int, int, int, const void *, void *, void *);
typedef int (*bwd_f)(int, int, int, int, const void *, const void *, void *, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    const int R = 2048, C = 1024, act = argc > 3 ? atoi(argv[3]) : 0;
    for (int dtype = 0; dtype < 2; dtype++) {
        size_t es = dtype ? 2 : 4;
        std::vector<char> x(size_t(R) * C * es), g(x.size()), out[2], dx[2];
        auto put = [&](std::vector<char> &v, size_t i, float val) {
            if (dtype) { uint32_t u; memcpy(&u, &val, 4); ((uint16_t *)v.data())[i] = uint16_t(u >> 16); }
            else ((float *)v.data())[i] = val;
        };
        for (size_t i = 0; i < x.size() / es; i++) { put(x, i, float((i * 7919) % 1000) / 250.0f - 2.0f); put(g, i, float((i * 104729) % 1000) / 500.0f - 1.0f); }
        std::vector<double> tf[2], tb[2];
        for (int v = 0; v < 2; v++) { out[v].resize(x.size()); dx[v].resize(x.size()); }
        for (int round = 0; round < 11; round++) for (int v = 0; v < 2; v++) {
            auto f = (fwd_f)dlsym(l[v], "pmoe_activation_forward");
            auto b = (bwd_f)dlsym(l[v], "pmoe_activation_backward");
            auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < 10; i++) f(dtype, act, R, C, x.data(), out[v].data(), nullptr);
            auto t1 = std::chrono::steady_clock::now();
            for (int i = 0; i < 10; i++) b(dtype, act, R, C, x.data(), g.data(), dx[v].data(), nullptr);
            auto t2 = std::chrono::steady_clock::now();
            tf[v].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / 10);
            tb[v].push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / 10);
        }
        for (int v = 0; v < 2; v++) { std::sort(tf[v].begin(), tf[v].end()); std::sort(tb[v].begin(), tb[v].end()); }
        printf("activation %d %s 2048x1024: forward A %.1f B %.1f us; backward A %.1f B %.1f us; same bits %s\n", act,
               dtype ? "bf16" : "f32", tf[0][5], tf[1][5], tb[0][5], tb[1][5], out[0] == out[1] && dx[0] == dx[1] ? "yes" : "NO");
    }
}
