// Cross-entropy backward (2048 rows, f32 logits, vocab from the command line), A/B of two builds
// (dlopen), alternating, 15 rounds of 5 calls, median per call. Usage: ce_ab LIB_A LIB_B VOCAB
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <random>
#include <cstdlib>
#include <vector>
typedef int (*ceb_f)(int, int, int, const void *, const int *, float, void *, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    int vocab = atoi(argv[3]), rows = 2048;
    std::mt19937 g(1); std::normal_distribution<float> nd;
    std::vector<float> x(size_t(rows) * vocab), d(x.size());
    for (auto &v : x) v = nd(g);
    std::vector<int> t(rows); for (auto &v : t) v = g() % vocab;
    std::vector<double> tm[2];
    for (int r = 0; r < 15; r++) for (int v = 0; v < 2; v++) {
        auto f = (ceb_f)dlsym(l[v], "pmoe_cross_entropy_backward");
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 5; i++) f(0, rows, vocab, x.data(), t.data(), 1.0f / rows, d.data(), nullptr);
        tm[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5);
    }
    for (int v = 0; v < 2; v++) std::sort(tm[v].begin(), tm[v].end());
    printf("ce backward f32 2048 x %d: A %.3f  B %.3f ms\n", vocab, tm[0][7], tm[1][7]);
}
