// pmoe_gpu_bench: CUDA-event benchmarks of libpanamoe_cuda.so through the C ABI (panamoe.h), for
// the GPU suite (scripts/gpu-suite/run.sh). For each MoE shape, token count and routing it times
// the fused router, router + dispatch plan, bf16 permute and combine, the bf16 tensor-core grouped
// GEMMs (the expert FFN's two projections, forward nn and backward nt / tn), and the whole SwiGLU
// MoE layer forward and forward + backward, in bf16 (mixed precision, as ops.MoELayer runs it
// with dtype bf16) and in f32. First of all the grouped GEMMs alone at issue 15's shape (model
// "grouped16": 16 experts of 512 rows, K 5120, N 8192), which torch_anchors.py times through
// torch._grouped_mm, then the layer at the CPU benchmark's shapes ("mixtral/4", "deepseek/4",
// 4096 tokens), where issue 11 compares our bf16 layer with PyTorch's.
//
// Method: warm-up calls, then many calls each timed between two CUDA events; the median is
// reported. Inputs and outputs rotate over several buffer sets when one set would fit in L2, so
// that caches do not flatter a kernel. Rates count real work only: 2 * rows * k * n FLOPs with
// rows = tokens * top_k (no padding), and GB/s over each tensor read or written once.
// Routing is generated exactly as scripts/gpu-suite/torch_anchors.py generates it (splitmix64 ->
// Gumbel noise on log popularity -> top-k), so both sides see the same expert group sizes.
//
// Results go to a JSON file, rewritten after every measurement so that a run cut short by its time
// limit still leaves what it measured.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "panamoe.h"

namespace {

// ---- errors ----

struct BenchError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void cuda_ok(cudaError_t e, const char *what) {
    if (e != cudaSuccess) throw BenchError(std::string(what) + ": " + cudaGetErrorString(e));
}

void abi_ok(int status, const char *call) {
    if (status != PMOE_OK)
        throw BenchError(std::string(call) + " returned " + std::to_string(status) + ": " +
                         pmoe_last_error());
}

// ---- options ----

struct Shape {
    std::string name;
    int hidden, ffn, experts, top_k;
};

const std::vector<Shape> kModels = {
    {"mixtral", 4096, 14336, 8, 2},   // Mixtral 8x7B
    {"deepseek", 7168, 2048, 256, 8}, // DeepSeek-V3
    {"qwen3", 2048, 768, 128, 8},     // Qwen3-30B-A3B
};
// The grouped GEMMs alone at the shape torch._grouped_mm is quoted at (issue 15: 16 experts,
// K 5120, N 8192, 8192 rows): the up projection of this shape at 8192 tokens, top-1, uniform.
const Shape kGemmShape = {"grouped16", 5120, 4096, 16, 1};
constexpr int kGemmTokens = 8192;
// The MoE layer alone at the shapes of the CPU's MoELayerBenchmark (jmh MoeShape: the models at a
// quarter of their width), 4096 tokens, uniform routing: issue 11 compares the bf16 layer with
// PyTorch's bf16 there.
const std::vector<Shape> kLayerShapes = {
    {"mixtral/4", 1024, 3584, 8, 2},
    {"deepseek/4", 1792, 512, 64, 8},
};
constexpr int kLayerTokens = 4096;
// Small and ragged, for compute-sanitizer: every code path once, in seconds.
const Shape kSmoke = {"smoke", 256, 136, 16, 4};

struct Options {
    std::string out = "pmoe_gpu_bench.json";
    std::vector<Shape> models = kModels;
    std::vector<int> tokens = {4096, 16384};
    std::vector<std::string> routings = {"uniform", "zipf"};
    double budget_s = 150;    // whole run; later measurements are skipped past it
    double target_ms = 150;   // time spent in the timed calls of one measurement
    int min_reps = 5, max_reps = 200, warmup = 3;
    bool layer = true;
    bool anchor = true; // the grouped GEMMs at kGemmShape, then the layers at kLayerShapes, first
    bool smoke = false;
};

std::vector<std::string> split(const std::string &s) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= s.size()) {
        const size_t comma = s.find(',', start);
        const size_t end = comma == std::string::npos ? s.size() : comma;
        if (end > start) parts.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

const char *kUsage =
    "usage: pmoe_gpu_bench [--out FILE] [--models mixtral,deepseek,qwen3] [--tokens 4096,16384]\n"
    "                      [--routing uniform,zipf] [--budget-s S] [--target-ms MS] [--no-layer]\n"
    "                      [--no-anchor] [--smoke]\n"
    "  --no-anchor: leave out what is measured first: the grouped GEMM at 16 experts x 512 rows,\n"
    "               K 5120, N 8192, and the layer at mixtral/4 and deepseek/4 (4096 tokens)\n"
    "  --smoke: one small ragged shape, one call of everything (for compute-sanitizer)\n";

Options parse(int argc, char **argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw BenchError(a + " needs a value\n" + kUsage);
            return argv[++i];
        };
        if (a == "--out") o.out = value();
        else if (a == "--budget-s") o.budget_s = std::stod(value());
        else if (a == "--target-ms") o.target_ms = std::stod(value());
        else if (a == "--no-layer") o.layer = false;
        else if (a == "--no-anchor") o.anchor = false;
        else if (a == "--smoke") o.smoke = true;
        else if (a == "--routing") o.routings = split(value());
        else if (a == "--tokens") {
            o.tokens.clear();
            for (const auto &t : split(value())) o.tokens.push_back(std::stoi(t));
        } else if (a == "--models") {
            o.models.clear();
            for (const auto &m : split(value())) {
                auto it = std::find_if(kModels.begin(), kModels.end(),
                                       [&](const Shape &s) { return s.name == m; });
                if (it == kModels.end()) throw BenchError("unknown model " + m + "\n" + kUsage);
                o.models.push_back(*it);
            }
        } else if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else {
            throw BenchError("unknown option " + a + "\n" + kUsage);
        }
    }
    for (const auto &r : o.routings)
        if (r != "uniform" && r != "zipf") throw BenchError("unknown routing " + r + "\n" + kUsage);
    if (o.smoke) {
        o.models = {kSmoke};
        o.tokens = {300};
        o.anchor = false;
        o.warmup = 0;
        o.min_reps = o.max_reps = 1;
    }
    return o;
}

// ---- routing (the same numbers as torch_anchors.py) ----

uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

constexpr double kZipfExponent = 1.2;

// Expert popularity: uniform, or Zipf (expert e chosen with weight 1 / (e + 1)^1.2).
double log_popularity(bool zipf, int e) { return zipf ? -kZipfExponent * std::log(e + 1.0) : 0.0; }

// logits[t, e] = log popularity(e) + Gumbel noise, so top-k samples experts without replacement
// in proportion to their popularity; softmax + top-k + renormalisation gives the weights.
// "balanced" (top-1 only): token t goes to expert t mod experts, logit 1 there and 0 elsewhere.
struct Routing {
    int tokens, experts, top_k;
    std::vector<float> logits, weights;
    std::vector<int32_t> ids, counts, offsets, slot_position, sorted_slot;
    int rows() const { return tokens * top_k; }
};

Routing make_routing(int tokens, int experts, int top_k, const std::string &kind, uint64_t seed) {
    Routing r{tokens, experts, top_k, {}, {}, {}, {}, {}, {}, {}};
    r.logits.resize(size_t(tokens) * experts);
    for (size_t i = 0; i < r.logits.size(); i++) {
        const int e = int(i % experts);
        if (kind == "balanced") {
            r.logits[i] = e == int(i / experts) % experts ? 1.0f : 0.0f;
            continue;
        }
        const double u = (double(splitmix64((seed << 32) + i) >> 11) + 0.5) * 0x1p-53;
        r.logits[i] = float(log_popularity(kind == "zipf", e) - std::log(-std::log(u)));
    }
    r.ids.resize(size_t(tokens) * top_k);
    r.weights.resize(r.ids.size());
    r.counts.assign(experts, 0);
    std::vector<int> order(experts);
    for (int t = 0; t < tokens; t++) {
        const float *l = &r.logits[size_t(t) * experts];
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int a, int b) {
            return l[a] > l[b] || (l[a] == l[b] && a < b);
        });
        double sum = 0;
        for (int j = 0; j < top_k; j++) sum += std::exp(double(l[order[j]]) - l[order[0]]);
        for (int j = 0; j < top_k; j++) {
            r.ids[size_t(t) * top_k + j] = order[j];
            r.weights[size_t(t) * top_k + j] = float(std::exp(double(l[order[j]]) - l[order[0]]) / sum);
            r.counts[order[j]]++;
        }
    }
    r.offsets.assign(experts + 1, 0);
    for (int e = 0; e < experts; e++) r.offsets[e + 1] = r.offsets[e] + r.counts[e];
    // Stable counting sort of the slots by expert (the dispatch plan's layout, dropless).
    r.slot_position.resize(r.ids.size());
    r.sorted_slot.resize(r.ids.size());
    std::vector<int32_t> next(r.offsets.begin(), r.offsets.end() - 1);
    for (size_t s = 0; s < r.ids.size(); s++) {
        const int32_t row = next[r.ids[s]]++;
        r.slot_position[s] = row;
        r.sorted_slot[row] = int32_t(s);
    }
    return r;
}

// ---- device memory ----

struct Buffer {
    void *p = nullptr;
    size_t bytes = 0;
    Buffer() = default;
    explicit Buffer(size_t n) : bytes(n) { cuda_ok(cudaMalloc(&p, n ? n : 16), "cudaMalloc"); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    Buffer(Buffer &&o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
    Buffer &operator=(Buffer &&o) noexcept {
        std::swap(p, o.p);
        std::swap(bytes, o.bytes);
        return *this;
    }
    ~Buffer() {
        if (p) cudaFree(p);
    }
    template <typename T> T *as() const { return static_cast<T *>(p); }
};

template <typename T> Buffer upload(const std::vector<T> &host) {
    Buffer b(host.size() * sizeof(T));
    cuda_ok(cudaMemcpy(b.p, host.data(), b.bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    return b;
}

__device__ float uniform_pm1(uint64_t seed, uint64_t i) {
    uint64_t z = (seed << 40) + i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return float(z >> 40) * 0x1p-23f - 1.0f;
}

// Uniform values in [-scale, scale): f32, or bf16 when `bf16`.
__global__ void fill_kernel(void *p, size_t n, bool bf16, uint64_t seed, float scale) {
    const size_t stride = size_t(gridDim.x) * blockDim.x;
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = scale * uniform_pm1(seed, i);
        if (bf16) static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
        else static_cast<float *>(p)[i] = v;
    }
}

Buffer random_buffer(size_t elements, bool bf16, uint64_t seed, float scale) {
    Buffer b(elements * (bf16 ? 2 : 4));
    if (elements) {
        fill_kernel<<<1024, 256>>>(b.p, elements, bf16, seed, scale);
        cuda_ok(cudaGetLastError(), "fill_kernel");
    }
    return b;
}

struct DeviceInfo {
    std::string name;
    int major = 0, minor = 0, sms = 0, driver = 0, runtime = 0;
    size_t l2 = 0, memory = 0;
};

DeviceInfo device_info() {
    DeviceInfo d;
    int count = 0;
    cuda_ok(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (count == 0) throw BenchError("no CUDA device");
    cudaDeviceProp p{};
    cuda_ok(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
    d.name = p.name;
    d.major = p.major;
    d.minor = p.minor;
    d.sms = p.multiProcessorCount;
    d.l2 = size_t(p.l2CacheSize);
    d.memory = p.totalGlobalMem;
    cudaDriverGetVersion(&d.driver);
    cudaRuntimeGetVersion(&d.runtime);
    return d;
}

size_t free_memory() {
    size_t free = 0, total = 0;
    cuda_ok(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    return free;
}

// ---- results ----

std::string json_string(const std::string &s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\', o += c;
        else if (c == '\n') o += "\\n";
        else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
        else o += c;
    }
    return o + "\"";
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

struct Record {
    std::string model, routing, op, status, reason;
    int tokens = 0, reps = 0, rotation = 0;
    double median_us = NAN, p10_us = NAN, p90_us = NAN, flop = 0, bytes = 0;
    std::string note;
};

struct Report {
    std::string path;
    DeviceInfo device;
    std::string date;
    std::string unavailable; // why nothing could be measured (no device, say)
    std::vector<Record> records;

    void add(const Record &r) {
        records.push_back(r);
        const double s = r.median_us * 1e-6;
        std::printf("%-9s %6d %-8s %-26s ", r.model.c_str(), r.tokens, r.routing.c_str(), r.op.c_str());
        if (r.status != "ok") std::printf("%s: %s\n", r.status.c_str(), r.reason.c_str());
        else if (r.flop > 0) std::printf("%10.1f us %8.1f TFLOP/s\n", r.median_us, r.flop / s * 1e-12);
        else if (r.bytes > 0) std::printf("%10.1f us %8.1f GB/s\n", r.median_us, r.bytes / s * 1e-9);
        else std::printf("%10.1f us\n", r.median_us);
        std::fflush(stdout);
        write();
    }

    void write() const {
        const std::string tmp = path + ".tmp";
        FILE *f = std::fopen(tmp.c_str(), "w");
        if (!f) throw BenchError("cannot write " + tmp);
        std::fprintf(f, "{\n  \"tool\": \"pmoe_gpu_bench\",\n  \"date\": %s,\n", json_string(date).c_str());
        if (!unavailable.empty())
            std::fprintf(f, "  \"status\": \"unavailable\",\n  \"reason\": %s,\n", json_string(unavailable).c_str());
        std::fprintf(f,
                     "  \"device\": {\"name\": %s, \"compute_capability\": \"%d.%d\", "
                     "\"multiprocessors\": %d, \"l2_bytes\": %zu, \"memory_bytes\": %zu, "
                     "\"driver\": %d, \"runtime\": %d},\n",
                     json_string(device.name).c_str(), device.major, device.minor, device.sms,
                     device.l2, device.memory, device.driver, device.runtime);
        std::fprintf(f, "  \"results\": [");
        for (size_t i = 0; i < records.size(); i++) {
            const Record &r = records[i];
            const double s = r.median_us * 1e-6;
            std::fprintf(f,
                         "%s\n    {\"impl\": \"panamoe\", \"model\": %s, \"tokens\": %d, \"routing\": %s, "
                         "\"op\": %s, \"status\": %s",
                         i ? "," : "", json_string(r.model).c_str(), r.tokens,
                         json_string(r.routing).c_str(), json_string(r.op).c_str(),
                         json_string(r.status).c_str());
            if (r.status == "ok")
                std::fprintf(f,
                             ", \"median_us\": %s, \"p10_us\": %s, \"p90_us\": %s, \"reps\": %d, "
                             "\"rotation\": %d, \"flop\": %s, \"bytes\": %s, \"tflops\": %s, \"gbps\": %s",
                             json_number(r.median_us).c_str(), json_number(r.p10_us).c_str(),
                             json_number(r.p90_us).c_str(), r.reps, r.rotation,
                             json_number(r.flop).c_str(), json_number(r.bytes).c_str(),
                             r.flop > 0 ? json_number(r.flop / s * 1e-12).c_str() : "null",
                             r.bytes > 0 ? json_number(r.bytes / s * 1e-9).c_str() : "null");
            else std::fprintf(f, ", \"reason\": %s", json_string(r.reason).c_str());
            if (!r.note.empty()) std::fprintf(f, ", \"note\": %s", json_string(r.note).c_str());
            std::fprintf(f, "}");
        }
        std::fprintf(f, "\n  ]\n}\n");
        std::fclose(f);
        if (std::rename(tmp.c_str(), path.c_str()) != 0) throw BenchError("cannot rename " + tmp);
    }
};

// ---- timing ----

using Clock = std::chrono::steady_clock;

struct Bench {
    Options opt;
    Report report;
    Clock::time_point deadline;

    double seconds_left() const {
        return std::chrono::duration<double>(deadline - Clock::now()).count();
    }

    // Buffer sets to rotate over so that `set_bytes` of inputs and outputs per call cannot stay in
    // L2 between calls: enough for 4x the L2 size, at most 8.
    int rotation(double set_bytes) const {
        if (opt.smoke) return 1;
        const double need = 4.0 * double(report.device.l2) / std::max(set_bytes, 1.0);
        return int(std::min(8.0, std::max(1.0, std::ceil(need))));
    }

    // Times run(i) (i selects the buffer set) with CUDA events and fills r's timing fields. The
    // first warm-up call is timed too: it sets the number of timed calls, and a slow call (the
    // big layers take seconds) needs fewer warm-ups and repetitions to be measured well.
    void time(Record &r, int rotation, const std::function<void(int)> &run) {
        r.rotation = rotation;
        cudaEvent_t a, b;
        cuda_ok(cudaEventCreate(&a), "cudaEventCreate");
        cuda_ok(cudaEventCreate(&b), "cudaEventCreate");
        cuda_ok(cudaEventRecord(a), "cudaEventRecord");
        run(0);
        cuda_ok(cudaEventRecord(b), "cudaEventRecord");
        cuda_ok(cudaEventSynchronize(b), "first call");
        float first_ms = 0;
        cuda_ok(cudaEventElapsedTime(&first_ms, a, b), "cudaEventElapsedTime");
        cudaEventDestroy(a);
        cudaEventDestroy(b);
        const bool slow = first_ms > 500;
        const int warmup = slow ? 0 : opt.warmup;
        for (int i = 1; i < warmup; i++) run(i % rotation);
        cuda_ok(cudaDeviceSynchronize(), "warm-up");
        const double budget_ms = std::min(opt.target_ms, 1000.0 * std::max(0.0, seconds_left()) / 4);
        const int min_reps = slow ? std::min(3, opt.min_reps) : opt.min_reps;
        const int reps = std::clamp(int(budget_ms / std::max(first_ms, 1e-3f)), min_reps, opt.max_reps);
        std::vector<cudaEvent_t> events(2 * size_t(reps));
        for (auto &e : events) cuda_ok(cudaEventCreate(&e), "cudaEventCreate");
        for (int i = 0; i < reps; i++) {
            cuda_ok(cudaEventRecord(events[2 * i]), "cudaEventRecord");
            run((warmup + i) % rotation);
            cuda_ok(cudaEventRecord(events[2 * i + 1]), "cudaEventRecord");
        }
        cuda_ok(cudaEventSynchronize(events.back()), "timed calls");
        std::vector<double> us(reps);
        for (int i = 0; i < reps; i++) {
            float ms = 0;
            cuda_ok(cudaEventElapsedTime(&ms, events[2 * i], events[2 * i + 1]), "cudaEventElapsedTime");
            us[i] = 1000.0 * ms;
        }
        for (auto &e : events) cudaEventDestroy(e);
        std::sort(us.begin(), us.end());
        auto pct = [&](double q) { return us[size_t(std::lround(q * (reps - 1)))]; };
        r.reps = reps;
        r.median_us = reps % 2 ? us[reps / 2] : 0.5 * (us[reps / 2 - 1] + us[reps / 2]);
        r.p10_us = pct(0.1);
        r.p90_us = pct(0.9);
        r.status = "ok";
    }

    // One measurement: skipped past the deadline; a failure is recorded and the run goes on,
    // unless the CUDA context is broken (a sticky error), which ends the run.
    void measure(Record r, const std::function<void(Record &)> &body) {
        if (seconds_left() <= 0) {
            r.status = "skipped";
            r.reason = "time budget of " + json_number(opt.budget_s) + " s used up";
        } else {
            try {
                body(r);
            } catch (const std::exception &e) {
                r.status = "error";
                r.reason = e.what();
                cudaGetLastError(); // an out-of-memory must not be reported again by the next check
                const cudaError_t sticky = cudaDeviceSynchronize();
                if (sticky != cudaSuccess) {
                    r.reason += std::string("; CUDA context lost: ") + cudaGetErrorString(sticky);
                    report.add(r);
                    throw BenchError("stopping: " + r.reason);
                }
            }
        }
        report.add(r);
    }
};

// ---- the measurements of one case (model, tokens, routing) ----

struct Case {
    Bench &b;
    const Shape &s;
    int tokens;
    std::string routing;
    Routing r;

    Case(Bench &bench, const Shape &shape, int t, const std::string &routing_name)
        : b(bench), s(shape), tokens(t), routing(routing_name),
          r(make_routing(t, shape.experts, shape.top_k, routing_name, 1)) {}

    Record record(const std::string &op) const {
        Record rec;
        rec.model = s.name;
        rec.tokens = tokens;
        rec.routing = routing;
        rec.op = op;
        return rec;
    }

    std::string groups_note() const {
        const auto [lo, hi] = std::minmax_element(r.counts.begin(), r.counts.end());
        return "rows per expert: min " + std::to_string(*lo) + ", max " + std::to_string(*hi) +
               ", mean " + json_number(double(r.rows()) / s.experts);
    }

    pmoe_router_config router_config() const {
        pmoe_router_config c{};
        c.tokens = tokens;
        c.experts = s.experts;
        c.top_k = s.top_k;
        c.score_func = PMOE_SCORE_SOFTMAX;
        c.renormalize = 1;
        return c;
    }

    pmoe_dispatch_config dispatch_config() const {
        pmoe_dispatch_config c{};
        c.tokens = tokens;
        c.top_k = s.top_k;
        c.logical_experts = s.experts;
        c.physical_experts = s.experts;
        c.capacity = PMOE_CAPACITY_DROPLESS;
        c.drop_policy = PMOE_DROP_BY_POSITION;
        return c;
    }

    // Router (softmax, top-k, renormalise) alone, then followed by the dispatch plan.
    void routing_ops() {
        const pmoe_router_config rc = router_config();
        const pmoe_dispatch_config dc = dispatch_config();
        const size_t te = size_t(tokens) * s.experts, tk = size_t(r.rows());
        const int rot = b.rotation(2.0 * te * 4);
        std::vector<Buffer> logits, scores;
        for (int i = 0; i < rot; i++) {
            logits.push_back(upload(r.logits));
            scores.emplace_back(te * 4);
        }
        Buffer weights(tk * 4), ids(tk * 4), counts(s.experts * 4), offsets((s.experts + 1) * 4),
            positions(tk * 4), sorted(tk * 4);
        auto router = [&](int i) {
            abi_ok(pmoe_router_forward(&rc, logits[i].as<float>(), scores[i].as<float>(),
                                       weights.as<float>(), ids.as<int32_t>(), nullptr),
                   "pmoe_router_forward");
        };
        auto plan = [&] {
            abi_ok(pmoe_dispatch_plan(&dc, ids.as<int32_t>(), weights.as<float>(), nullptr,
                                      counts.as<int32_t>(), offsets.as<int32_t>(),
                                      positions.as<int32_t>(), sorted.as<int32_t>(), nullptr),
                   "pmoe_dispatch_plan");
        };
        b.measure(record("router"), [&](Record &rec) {
            rec.bytes = double(te) * 4 * 2 + double(tk) * 8;
            rec.note = "softmax scores, top-k, renormalised weights; bytes: logits read, scores, "
                       "weights and ids written";
            b.time(rec, rot, router);
        });
        b.measure(record("router_dispatch"), [&](Record &rec) {
            rec.note = "router, then the dropless dispatch plan (counts, offsets, positions)";
            b.time(rec, rot, [&](int i) {
                router(i);
                plan();
            });
            // The plan on the GPU must be the one both sides benchmark with.
            std::vector<int32_t> got(s.experts + 1);
            cuda_ok(cudaMemcpy(got.data(), offsets.p, got.size() * 4, cudaMemcpyDeviceToHost), "offsets");
            if (got != r.offsets) rec.note += "; WARNING: GPU expert offsets differ from the host routing";
        });
    }

    // bf16 permute (gather into expert order) and combine (weighted sum back per token).
    void permute_ops() {
        const int rows = r.rows(), d = s.hidden;
        const double row_bytes = 2.0 * d;
        Buffer sorted = upload(r.sorted_slot), positions = upload(r.slot_position),
               weights = upload(r.weights);
        const int rot = b.rotation(row_bytes * (double(tokens) + rows));
        std::vector<Buffer> x, xp, y;
        for (int i = 0; i < rot; i++) {
            x.push_back(random_buffer(size_t(tokens) * d, true, 10 + i, 1));
            xp.push_back(random_buffer(size_t(rows) * d, true, 20 + i, 1));
            y.emplace_back(size_t(tokens) * d * 2);
        }
        b.measure(record("permute_bf16"), [&](Record &rec) {
            rec.bytes = 2 * row_bytes * rows + 4.0 * rows;
            rec.note = "bytes: rows read once from x, written once, plus sorted_slot";
            b.time(rec, rot, [&](int i) {
                abi_ok(pmoe_permute(PMOE_DTYPE_BF16, tokens, s.top_k, rows, d, x[i].p,
                                    sorted.as<int32_t>(), xp[i].p, nullptr),
                       "pmoe_permute");
            });
        });
        b.measure(record("combine_bf16"), [&](Record &rec) {
            rec.bytes = row_bytes * (double(rows) + tokens) + 8.0 * rows;
            rec.note = "bytes: expert rows read, token rows written, weights and positions";
            b.time(rec, rot, [&](int i) {
                abi_ok(pmoe_combine(PMOE_DTYPE_BF16, tokens, s.top_k, rows, d, xp[i].p,
                                    weights.as<float>(), positions.as<int32_t>(), y[i].p, nullptr),
                       "pmoe_combine");
            });
        });
    }

    // Expert weights: `experts` pointers over as many distinct matrices as fit in `budget` bytes
    // (expert e uses matrix e mod n); the note of the record says when they are shared.
    struct Weights {
        std::vector<Buffer> storage;
        Buffer pointers;
        int distinct = 0;
    };

    Weights weights(size_t elements, bool bf16, double budget, uint64_t seed, float scale) const {
        Weights w;
        const double bytes = double(elements) * (bf16 ? 2 : 4);
        w.distinct = int(std::clamp(std::floor(budget / bytes), 1.0, double(s.experts)));
        std::vector<void *> ptrs(s.experts);
        for (int i = 0; i < w.distinct; i++) w.storage.push_back(random_buffer(elements, bf16, seed + i, scale));
        for (int e = 0; e < s.experts; e++) ptrs[e] = w.storage[e % w.distinct].p;
        w.pointers = upload(ptrs);
        return w;
    }

    std::string sharing_note(const Weights &w) const {
        return w.distinct == s.experts ? ""
                                       : "; memory holds " + std::to_string(w.distinct) +
                                             " distinct expert matrices, expert e uses e mod " +
                                             std::to_string(w.distinct);
    }

    // The bf16 grouped GEMMs on tensor cores, for the FFN's up (gate|up) and down projections
    // (k -> n): the forward c[rows, n] = a[rows, k] * W_e[k, n] (nn), and the backward's
    // gradients da[rows, k] = dc[rows, n] * W_e^T (nt) and dW_e[k, n] += a^T * dc (tn, into
    // f32 with beta 1, as the bf16 training path accumulates its master gradients).
    void gemm_ops() {
        const int rows = r.rows();
        Buffer offsets = upload(r.offsets);
        struct Projection {
            const char *name;
            int k, n;
            bool up;
        };
        for (const Projection p : {Projection{"up", s.hidden, 2 * s.ffn}, Projection{"down", s.ffn, s.hidden}}) {
            for (const char *form : {"nn", "nt", "tn"}) {
                const std::string op = std::string("grouped_gemm_") + p.name + "_bf16" +
                                       (form == std::string("nn") ? "" : std::string("_") + form);
                const bool tn = form == std::string("tn"), nt = form == std::string("nt");
                b.measure(record(op), [&](Record &rec) {
                    const double set_bytes = 2.0 * rows * (double(p.k) + p.n);
                    const int rot = b.rotation(set_bytes);
                    const double budget = 0.8 * double(free_memory()) - rot * set_bytes;
                    // tn: the f32 gradients take the place of the weights
                    Weights w = weights(size_t(p.k) * p.n, !tn, budget, 100, tn ? 0.0f : 1.0f / std::sqrt(float(p.k)));
                    std::vector<Buffer> in, out;
                    for (int i = 0; i < rot; i++) {
                        in.push_back(random_buffer(size_t(rows) * (nt ? p.n : p.k), true, 30 + i, 1));
                        out.push_back(tn ? random_buffer(size_t(rows) * p.n, true, 50 + i, 1)
                                         : Buffer(size_t(rows) * (nt ? p.k : p.n) * 2));
                    }
                    rec.flop = 2.0 * rows * p.k * p.n;
                    rec.note = std::string(form) + ", k " + std::to_string(p.k) + ", n " + std::to_string(p.n) +
                               "; " + groups_note() + sharing_note(w);
                    const void *const *wp = w.pointers.as<const void *const>();
                    b.time(rec, rot, [&](int i) {
                        if (tn)
                            abi_ok(pmoe_grouped_gemm_tn_bf16(s.experts, offsets.as<int32_t>(), p.k, p.n, in[i].p,
                                                             out[i].p, 1.0f, PMOE_DTYPE_F32,
                                                             const_cast<void *const *>(wp), nullptr),
                                   "pmoe_grouped_gemm_tn_bf16");
                        else if (nt)
                            abi_ok(pmoe_grouped_gemm_nt_bf16(s.experts, offsets.as<int32_t>(), p.n, p.k, in[i].p,
                                                             wp, out[i].p, nullptr),
                                   "pmoe_grouped_gemm_nt_bf16");
                        else
                            abi_ok(pmoe_grouped_gemm_nn_bf16(s.experts, offsets.as<int32_t>(), p.k, p.n, in[i].p,
                                                             wp, out[i].p, nullptr),
                                   "pmoe_grouped_gemm_nn_bf16");
                    });
                });
            }
        }
    }

    // The SwiGLU MoE layer through the ABI, from router logits to the combined output, and back
    // to the logits' and input's gradients, in the order ops.MoELayer runs it: in f32, or in bf16
    // (mixed precision: bf16 rows, activations and working weights, the expert GEMMs on tensor
    // cores; router and gate weights f32). In both the weight gradients are f32 and accumulated
    // (tn with beta 1), as the layer accumulates them over micro-batches.
    void layer_ops(bool bf16) {
        const int T = tokens, K = s.top_k, E = s.experts, d = s.hidden, f = s.ffn, R = r.rows();
        const int dtype = bf16 ? PMOE_DTYPE_BF16 : PMOE_DTYPE_F32;
        const size_t size = bf16 ? 2 : 4; // of a row element and a working weight
        const std::string suffix = bf16 ? "_bf16" : "_f32";
        const double fwd_flop = 2.0 * R * 3.0 * d * f;
        b.measure(record("layer_fwd" + suffix), [&](Record &fwd) {
            const pmoe_router_config rc = router_config();
            const pmoe_dispatch_config dc = dispatch_config();
            auto f32 = [](size_t n) { return Buffer(n * 4); };
            auto rows = [&](size_t n) { return Buffer(n * size); };
            Buffer logits = upload(r.logits), x = random_buffer(size_t(T) * d, bf16, 40, 1),
                   scores = f32(size_t(T) * E), w = f32(size_t(T) * K), ids = f32(size_t(T) * K),
                   counts = f32(E), offsets = f32(E + 1), pos = f32(size_t(T) * K),
                   sorted = f32(size_t(T) * K), xp = rows(size_t(R) * d), h = rows(size_t(R) * 2 * f),
                   act = rows(size_t(R) * f), o = rows(size_t(R) * d), y = rows(size_t(T) * d),
                   gy = random_buffer(size_t(T) * d, bf16, 41, 1), go = rows(size_t(R) * d),
                   gw = f32(size_t(T) * K), gact = rows(size_t(R) * f), gh = rows(size_t(R) * 2 * f),
                   gxp = rows(size_t(R) * d), gx = rows(size_t(T) * d), glogits = f32(size_t(T) * E);
            // Weights and their f32 gradients share the memory in proportion, so that both hold
            // the same number of distinct matrices.
            const double weight_share = 0.8 * double(free_memory()) * double(size) / double(size + 4);
            const double grad_share = 0.8 * double(free_memory()) * 4.0 / double(size + 4);
            Weights w1 = weights(size_t(d) * 2 * f, bf16, weight_share * 2 / 3, 200, 1.0f / std::sqrt(float(d)));
            Weights w2 = weights(size_t(f) * d, bf16, weight_share / 3, 300, 1.0f / std::sqrt(float(f)));
            Weights g1 = weights(size_t(d) * 2 * f, false, grad_share * 2 / 3, 400, 0);
            Weights g2 = weights(size_t(f) * d, false, grad_share / 3, 500, 0);
            const int32_t *off = offsets.as<int32_t>();
            // The expert GEMMs of the dtype: c = a * W (nn), c = a * W^T (nt), grad += a^T * b (tn).
            auto nn = [&](int k, int n, const Buffer &a, const Weights &wt, Buffer &c, const char *what) {
                abi_ok(bf16 ? pmoe_grouped_gemm_nn_bf16(E, off, k, n, a.p, wt.pointers.as<const void *const>(), c.p,
                                                        nullptr)
                            : pmoe_grouped_gemm_nn(E, off, k, n, a.as<float>(), wt.pointers.as<const float *const>(),
                                                   c.as<float>(), nullptr),
                       what);
            };
            auto nt = [&](int k, int n, const Buffer &a, const Weights &wt, Buffer &c, const char *what) {
                abi_ok(bf16 ? pmoe_grouped_gemm_nt_bf16(E, off, k, n, a.p, wt.pointers.as<const void *const>(), c.p,
                                                        nullptr)
                            : pmoe_grouped_gemm_nt(E, off, k, n, a.as<float>(), wt.pointers.as<const float *const>(),
                                                   c.as<float>(), nullptr),
                       what);
            };
            auto tn = [&](int k, int n, const Buffer &a, const Buffer &g, const Weights &grad, const char *what) {
                abi_ok(bf16 ? pmoe_grouped_gemm_tn_bf16(E, off, k, n, a.p, g.p, 1.0f, PMOE_DTYPE_F32,
                                                        grad.pointers.as<void *const>(), nullptr)
                            : pmoe_grouped_gemm_tn(E, off, k, n, a.as<float>(), g.as<float>(), 1.0f,
                                                   grad.pointers.as<float *const>(), nullptr),
                       what);
            };
            auto forward = [&](int) {
                abi_ok(pmoe_router_forward(&rc, logits.as<float>(), scores.as<float>(), w.as<float>(),
                                           ids.as<int32_t>(), nullptr), "pmoe_router_forward");
                abi_ok(pmoe_dispatch_plan(&dc, ids.as<int32_t>(), w.as<float>(), nullptr, counts.as<int32_t>(),
                                          offsets.as<int32_t>(), pos.as<int32_t>(), sorted.as<int32_t>(),
                                          nullptr), "pmoe_dispatch_plan");
                abi_ok(pmoe_permute(dtype, T, K, R, d, x.p, sorted.as<int32_t>(), xp.p, nullptr), "pmoe_permute");
                nn(d, 2 * f, xp, w1, h, "grouped_gemm_nn (up)");
                abi_ok(pmoe_activation_forward(dtype, PMOE_ACT_SWIGLU, R, f, h.p, act.p, nullptr),
                       "pmoe_activation_forward");
                nn(f, d, act, w2, o, "grouped_gemm_nn (down)");
                abi_ok(pmoe_combine(dtype, T, K, R, d, o.p, w.as<float>(), pos.as<int32_t>(), y.p, nullptr),
                       "pmoe_combine");
            };
            auto backward = [&] {
                abi_ok(pmoe_combine_backward(dtype, T, K, R, d, gy.p, o.p, w.as<float>(), pos.as<int32_t>(), go.p,
                                             gw.as<float>(), nullptr),
                       "pmoe_combine_backward");
                tn(f, d, act, go, g2, "grouped_gemm_tn (down)");
                nt(d, f, go, w2, gact, "grouped_gemm_nt (down)");
                abi_ok(pmoe_activation_backward(dtype, PMOE_ACT_SWIGLU, R, f, h.p, gact.p, gh.p, nullptr),
                       "pmoe_activation_backward");
                tn(d, 2 * f, xp, gh, g1, "grouped_gemm_tn (up)");
                nt(2 * f, d, gh, w1, gxp, "grouped_gemm_nt (up)");
                abi_ok(pmoe_permute_backward(dtype, T, K, R, d, gxp.p, pos.as<int32_t>(), gx.p, nullptr),
                       "pmoe_permute_backward");
                abi_ok(pmoe_router_backward(&rc, scores.as<float>(), ids.as<int32_t>(), gw.as<float>(), nullptr,
                                            glogits.as<float>(), nullptr), "pmoe_router_backward");
            };
            const std::string note = std::string(bf16 ? "bf16 rows and working weights, f32 router and weight "
                                                        "gradients; "
                                                      : "") +
                                     "router logits given (the router projection is left out on both sides); " +
                                     groups_note() + sharing_note(w1);
            fwd.flop = fwd_flop;
            fwd.note = note;
            b.time(fwd, 1, forward);
            b.measure(record("layer_fwd_bwd" + suffix), [&](Record &both) {
                both.flop = 3 * fwd_flop;
                both.note = note;
                b.time(both, 1, [&](int i) {
                    forward(i);
                    backward();
                });
            });
        });
    }

    // The layer in bf16 (mixed precision, the issue's comparison), then in f32.
    void layers() {
        layer_ops(true);
        layer_ops(false);
    }
};

std::string utc_now() {
    char buf[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return buf;
}

int run(const Options &opt) {
    Bench b;
    b.opt = opt;
    b.deadline = Clock::now() + std::chrono::milliseconds(long(opt.budget_s * 1000));
    b.report.path = opt.out;
    b.report.date = utc_now();
    try {
        b.report.device = device_info();
    } catch (const BenchError &e) {
        b.report.unavailable = e.what(); // the merged table says why there are no numbers
        b.report.write();
        throw;
    }
    const DeviceInfo &d = b.report.device;
    std::printf("pmoe_gpu_bench: %s (sm_%d%d, %d SMs, L2 %zu MiB, %zu MiB), driver %d, runtime %d, "
                "library %s\n",
                d.name.c_str(), d.major, d.minor, d.sms, d.l2 >> 20, d.memory >> 20, d.driver, d.runtime,
                pmoe_backend_name());
    b.report.write();
    std::vector<Case> cases;
    for (const Shape &s : opt.models)
        for (int t : opt.tokens)
            for (const std::string &routing : opt.routings) cases.emplace_back(b, s, t, routing);
    try {
        if (opt.anchor && !opt.smoke) {
            Case(b, kGemmShape, kGemmTokens, "balanced").gemm_ops();
            for (const Shape &s : kLayerShapes) Case(b, s, kLayerTokens, "uniform").layers();
        }
        // Kernels first (seconds for all cases), then the layers, smallest first.
        for (Case &c : cases) {
            c.routing_ops();
            c.permute_ops();
            c.gemm_ops();
        }
        if (opt.layer) {
            std::vector<Case *> order;
            for (Case &c : cases) order.push_back(&c);
            std::stable_sort(order.begin(), order.end(), [](const Case *a, const Case *c) {
                return double(a->r.rows()) * a->s.hidden * a->s.ffn < double(c->r.rows()) * c->s.hidden * c->s.ffn;
            });
            for (Case *c : order) c->layers();
        }
    } catch (const BenchError &e) {
        std::fprintf(stderr, "pmoe_gpu_bench: %s\n", e.what());
        return 3;
    }
    const auto failed = std::count_if(b.report.records.begin(), b.report.records.end(),
                                      [](const Record &r) { return r.status == "error"; });
    std::printf("pmoe_gpu_bench: %zu measurements, %ld failed; wrote %s\n", b.report.records.size(),
                long(failed), opt.out.c_str());
    return failed ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "pmoe_gpu_bench: %s\n", e.what());
        return 2;
    }
}
