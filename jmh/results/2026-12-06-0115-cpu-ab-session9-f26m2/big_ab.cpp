#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
typedef int (*g16_f)(int, int, int, int, int, float, const void *, int, const void *, int, float, int, void *, int, void *);
int main(int argc, char **argv) {
    void *l[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    int m = atoi(argv[3]), n = atoi(argv[4]), k = atoi(argv[5]), reps = atoi(argv[6]), ta = argc > 7 ? atoi(argv[7]) : 0;
    std::vector<uint16_t> a(size_t(m) * k, 0x3f80), b(size_t(k) * n, 0x3f80); std::vector<float> c(size_t(m) * n);
    std::vector<double> t[2];
    for (int r = 0; r < reps; r++) for (int v = 0; v < 2; v++) {
        auto f = (g16_f)dlsym(l[v], "pmoe_gemm_bf16");
        auto t0 = std::chrono::steady_clock::now();
        f(ta, 0, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), n, 0.0f, ta ? 0 : 1, c.data(), n, nullptr);
        t[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    for (int v = 0; v < 2; v++) std::sort(t[v].begin(), t[v].end());
    double fl = 2.0 * m * n * k;
    printf("%dx%dx%d%s: A %.2f ms (%.0f GF/s) B %.2f ms (%.0f GF/s)\n", m, n, k, ta ? " tn" : "", t[0][reps/2], fl / t[0][reps/2] / 1e6, t[1][reps/2], fl / t[1][reps/2] / 1e6);
}
