#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <vector>
typedef int (*ss_f)(int64_t, const float *, double *, void *);
int main(int argc, char **argv) {
    void *l = dlopen(argv[1], RTLD_NOW); auto ss = (ss_f)dlsym(l, "pmoe_sum_squares");
    const int64_t n = 9541888; std::vector<float> g(n, 0.01f);
    // small's tensor sizes, roughly: per block ln 2x256, qkv 196608+768, proj 65536+256, ln2 2x256; 3 dense fc 262144+1024, 262144+256; 3 moe: router 2048, 8 x (131072, 131072); wte 16384 wpe 65536
    std::vector<int64_t> sizes;
    for (int b = 0; b < 6; b++) { for (int64_t s : {256, 256, 196608, 768, 65536, 256, 256, 256}) sizes.push_back(s);
        if (b % 2 == 0) for (int64_t s : {262144, 1024, 262144, 256}) sizes.push_back(s); else { sizes.push_back(2048); for (int e = 0; e < 16; e++) sizes.push_back(131072); } }
    sizes.push_back(16384); sizes.push_back(65536); sizes.push_back(256); sizes.push_back(256);
    int64_t tot = 0; for (auto s : sizes) tot += s;
    std::vector<double> a, b;
    for (int r = 0; r < 21; r++) {
        double x, s = 0; auto t0 = std::chrono::steady_clock::now();
        int64_t o = 0; for (auto z : sizes) { ss(z, g.data() + o, &x, nullptr); s += x; o += z; }
        auto t1 = std::chrono::steady_clock::now();
        ss(tot, g.data(), &x, nullptr);
        auto t2 = std::chrono::steady_clock::now();
        a.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count()); b.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    std::sort(a.begin(), a.end()); std::sort(b.begin(), b.end());
    printf("%zu tensors, %lld floats: per tensor %.2f ms, one call %.2f ms\n", sizes.size(), (long long)tot, a[10], b[10]);
}
