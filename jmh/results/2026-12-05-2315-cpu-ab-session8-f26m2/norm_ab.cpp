// layernorm fwd/bwd at 2048 x 256 (small's shape), f32 and bf16: A/B of two builds (dlopen),
// alternating rounds of 20 calls, median per call; and the outputs of the two compared bit for bit.
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
typedef int (*fwd_f)(int, int, int, float, const void *, const void *, const void *, void *, float *, float *, void *);
typedef int (*bwd_f)(int, int, int, const void *, const void *, const float *, const float *, const void *, void *, float *, float *, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    const int R = 2048, C = argc > 3 ? atoi(argv[3]) : 256;
    for (int dtype = 0; dtype < 2; dtype++) {
        size_t es = dtype ? 2 : 4;
        std::vector<char> x(R * C * es), w(C * es), bias(C * es), dout(R * C * es), out[2], dx[2];
        auto put = [&](std::vector<char> &v, size_t i, float val) {
            if (dtype) { uint32_t u; memcpy(&u, &val, 4); ((uint16_t *)v.data())[i] = uint16_t(u >> 16); }
            else ((float *)v.data())[i] = val;
        };
        for (size_t i = 0; i < x.size() / es; i++) { put(x, i, float((i * 7919) % 1000) / 500.0f - 1.0f); put(dout, i, float((i * 104729) % 1000) / 500.0f - 1.0f); }
        for (size_t i = 0; i < w.size() / es; i++) { put(w, i, 1.0f + 0.001f * i); put(bias, i, 0.01f * i); }
        std::vector<float> mean[2], rstd[2], dw[2], db[2];
        std::vector<double> tf[2], tb[2];
        for (int v = 0; v < 2; v++) { out[v].resize(x.size()); dx[v].resize(x.size()); mean[v].resize(R); rstd[v].resize(R); dw[v].assign(C, 0); db[v].assign(C, 0); }
        for (int round = 0; round < 15; round++) for (int v = 0; v < 2; v++) {
            auto f = (fwd_f)dlsym(l[v], "pmoe_layernorm_forward");
            auto b = (bwd_f)dlsym(l[v], "pmoe_layernorm_backward");
            auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < 20; i++) f(dtype, R, C, 1e-5f, x.data(), w.data(), bias.data(), out[v].data(), mean[v].data(), rstd[v].data(), nullptr);
            auto t1 = std::chrono::steady_clock::now();
            for (int i = 0; i < 20; i++) b(dtype, R, C, x.data(), w.data(), mean[v].data(), rstd[v].data(), dout.data(), dx[v].data(), dw[v].data(), db[v].data(), nullptr);
            auto t2 = std::chrono::steady_clock::now();
            tf[v].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / 20);
            tb[v].push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / 20);
        }
        for (int v = 0; v < 2; v++) { std::sort(tf[v].begin(), tf[v].end()); std::sort(tb[v].begin(), tb[v].end()); }
        const bool same = out[0] == out[1] && dx[0] == dx[1] && mean[0] == mean[1] && rstd[0] == rstd[1] && dw[0] == dw[1] && db[0] == db[1];
        printf("layernorm %s 2048x%d: forward A %.1f B %.1f us; backward A %.1f B %.1f us; same bits %s\n",
               dtype ? "bf16" : "f32", C, tf[0][7], tf[1][7], tb[0][7], tb[1][7], same ? "yes" : "NO");
    }
}
