// Attention forward and backward (small's shape: B 8, T 256, C 256, H 8), A/B of two builds
// (dlopen), alternating, 15 rounds of 5 calls, median per call.
// Usage: attn_ab LIB_A LIB_B DTYPE(0 f32, 1 bf16) [rounds]; prints the median per call of each build.
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
typedef int (*fwd_f)(int, int, int, int, int, const void *, float *, void *, void *);
typedef int (*bwd_f)(int, int, int, int, int, const void *, const float *, const void *, void *, void *);
static uint16_t bf(float f) { uint32_t u; memcpy(&u, &f, 4); return uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    if (!l[0] || !l[1]) { printf("dlopen: %s\n", dlerror()); return 1; }
    int dtype = atoi(argv[3]), rounds = argc > 4 ? atoi(argv[4]) : 15;
    const int B = 8, T = 256, C = 256, H = 8;
    size_t es = dtype ? 2 : 4;
    std::mt19937 g(1); std::normal_distribution<float> nd;
    std::vector<char> qkv(size_t(B) * T * 3 * C * es), dout(size_t(B) * T * C * es), out(dout.size()), dqkv(qkv.size());
    auto fill = [&](std::vector<char> &v) {
        for (size_t i = 0; i < v.size() / es; i++) { float x = nd(g); if (dtype) ((uint16_t *)v.data())[i] = bf(x); else ((float *)v.data())[i] = x; }
    };
    fill(qkv); fill(dout);
    std::vector<float> att(size_t(B) * H * T * T);
    std::vector<double> tf[2], tb[2];
    for (int r = 0; r < rounds; r++) for (int v = 0; v < 2; v++) {
        auto f = (fwd_f)dlsym(l[v], "pmoe_attention_forward");
        auto b = (bwd_f)dlsym(l[v], "pmoe_attention_backward");
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 5; i++) f(dtype, B, T, C, H, qkv.data(), att.data(), out.data(), nullptr);
        auto t1 = std::chrono::steady_clock::now();
        for (int i = 0; i < 5; i++) b(dtype, B, T, C, H, qkv.data(), att.data(), dout.data(), dqkv.data(), nullptr);
        auto t2 = std::chrono::steady_clock::now();
        tf[v].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / 5);
        tb[v].push_back(std::chrono::duration<double, std::milli>(t2 - t1).count() / 5);
    }
    for (int v = 0; v < 2; v++) { std::sort(tf[v].begin(), tf[v].end()); std::sort(tb[v].begin(), tb[v].end()); }
    int m = rounds / 2;
    printf("attention %s B8 T256 C256 H8: forward A %.3f B %.3f ms; backward A %.3f B %.3f ms\n",
           dtype ? "bf16" : "f32", tf[0][m], tf[1][m], tb[0][m], tb[1][m]);
}
