// attention fwd/bwd, small's shape, with `bufs` distinct att/qkv buffers rotated (training-like when 6).
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
    void *ls[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[4], RTLD_NOW | RTLD_LOCAL)};
    int dtype = atoi(argv[2]), bufs = atoi(argv[3]), rounds = 21;
    const int B = 8, T = 256, C = 256, H = 8;
    size_t es = dtype ? 2 : 4;
    std::mt19937 g(1); std::normal_distribution<float> nd;
    std::vector<std::vector<char>> qkv(bufs), out(bufs);
    std::vector<std::vector<float>> att(bufs);
    std::vector<char> dout(size_t(B) * T * C * es), dqkv(size_t(B) * T * 3 * C * es);
    auto fill = [&](std::vector<char> &v) {
        for (size_t i = 0; i < v.size() / es; i++) { float x = nd(g); if (dtype) ((uint16_t *)v.data())[i] = bf(x); else ((float *)v.data())[i] = x; }
    };
    for (int i = 0; i < bufs; i++) { qkv[i].resize(dqkv.size()); fill(qkv[i]); out[i].resize(dout.size()); att[i].resize(size_t(B) * H * T * T); }
    fill(dout);
    std::vector<double> tfs[2], tbs[2];
    for (int r = 0; r < rounds; r++) for (int w = 0; w < 2; w++) {
        auto f = (fwd_f)dlsym(ls[w], "pmoe_attention_forward");
        auto b = (bwd_f)dlsym(ls[w], "pmoe_attention_backward");
        auto &tf = tfs[w]; auto &tb = tbs[w];
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < bufs; i++) f(dtype, B, T, C, H, qkv[i].data(), att[i].data(), out[i].data(), nullptr);
        auto t1 = std::chrono::steady_clock::now();
        for (int i = bufs - 1; i >= 0; i--) b(dtype, B, T, C, H, qkv[i].data(), att[i].data(), dout.data(), dqkv.data(), nullptr);
        auto t2 = std::chrono::steady_clock::now();
        tf.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / bufs);
        tb.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count() / bufs);
    }
    for (int w = 0; w < 2; w++) { std::sort(tfs[w].begin(), tfs[w].end()); std::sort(tbs[w].begin(), tbs[w].end()); }
    printf("%s bufs %d: forward A %.3f B %.3f, backward A %.3f B %.3f ms per call (median)\n", dtype ? "bf16" : "f32", bufs, tfs[0][rounds/2], tfs[1][rounds/2], tbs[0][rounds/2], tbs[1][rounds/2]);
}
