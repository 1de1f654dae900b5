// cuda_host.hpp - CUDA's execution model on the CPU, so the project's .cu kernels compile with
// the host C++ compiler and run in CI, where there is no GPU (build flag PMOE_HOST_EXEC).
//
// What it provides:
//  - threadIdx / blockIdx / blockDim / gridDim / warpSize;
//  - a launch that runs the threads of a block as fibers (Boost.Context; default) or as OS
//    threads (PMOE_HOSTEXEC_THREADS=1, for running a test under ThreadSanitizer, which the
//    harness's mutex/condvar barriers make race-precise);
//  - two fiber schedules (PMOE_HOSTEXEC_SCHEDULE=in-order | random; by default launches of a
//    kernel alternate between them). Both run a block warp by warp: a warp runs until all its
//    lanes wait at __syncthreads (or return), so one warp can be a whole barrier interval ahead
//    of another, as on the GPU. in-order: warps, lanes and blocks ascending, one block at a
//    time. random (seeded: PMOE_HOSTEXEC_SEED): warps and lanes in a new random order every
//    round, blocks in a random order with up to kBlocksInFlight of them interleaved barrier
//    interval by barrier interval, each with its own shared memory. A read of another thread's
//    write that no barrier orders reads the poison (or a stale value) under one of the two;
//  - __syncthreads as a barrier over the threads still running (a thread that returned leaves
//    every barrier), deadlock detection (fibers: nothing runnable; threads: a timeout);
//  - static __shared__ arrays (placed in the ELF section pmoe_shared) and dynamic shared memory
//    (PMOE_DYNAMIC_SHARED), both filled with a poison pattern (NaN as f32) before every block,
//    so a value read before it was written in this block is visibly wrong; a launch whose
//    static + dynamic shared memory exceeds the target architecture's limit fails
//    (PMOE_HOSTEXEC_ARCH=80 | 90, default 80);
//  - warp collectives (__syncwarp, shuffles, votes, __reduce_*_sync, and hw.cuh's ldmatrix and
//    mma) that synchronise the lanes named in the mask, nothing more: lanes are otherwise
//    unsynchronised, as on Volta and later. Each is tagged with its kind and call site: lanes
//    meeting at different calls, or a mask naming a lane that exited, fault;
//  - cp.async (hw.cuh) reading its source at issue and poisoning its destination until the
//    wait_group that covers it; ldmatrix and cp.async check alignment and address space, and
//    the library is built with -fsanitize=alignment so a misaligned typed access (a 16-byte
//    vector or pack) ends the launch naming the type and source line (misaligned.cpp);
//  - atomics (real atomics, so the OS-thread mode is correct too).
// Launches run one at a time (one process-wide mutex): "device memory" is host memory.
//
// Include order matters: cuda_bf16.h's host path defines dim3, the vector types, bf16 and the
// CUDA qualifiers (as nothing); __shared__ is then redefined, because as nothing a shared array
// would silently become a per-thread local.
#pragma once

#ifndef PMOE_HOST_EXEC
#error "cuda_host.hpp is the host-execution harness: build with -DPMOE_HOST_EXEC"
#endif

#include <cuda_bf16.h>

#include <boost/context/fiber.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#undef __shared__
#define __shared__ static __attribute__((section("pmoe_shared")))
#define __launch_bounds__(...)

// Dynamic shared memory: `PMOE_DYNAMIC_SHARED(float, buf);` instead of `extern __shared__`.
#define PMOE_DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(::pmoe_host::dynamic_shared())

#define threadIdx (::pmoe_host::self().tid)
#define blockIdx (::pmoe_host::self().block->idx)
#define blockDim (::pmoe_host::self().block->dim)
#define gridDim (::pmoe_host::self().block->grid)
#define warpSize 32

// The call site of a device intrinsic, as trailing defaulted parameters (empty on the device).
#define PMOE_SITE_PARAMS const char *pmoe_file = __builtin_FILE(), int pmoe_line = __builtin_LINE()

extern "C" {
// Bounds of the static shared section, defined by the linker (weak: a library may have none).
extern char __start_pmoe_shared[] __attribute__((weak, visibility("hidden")));
extern char __stop_pmoe_shared[] __attribute__((weak, visibility("hidden")));
}

namespace pmoe_host {

constexpr uint32_t kPoison = 0x7fbadbadu; // NaN as f32, 2142952365 as int32
constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kSlotBytes = 64; // payload of one lane in a warp collective
constexpr int kMaxThreads = 1024;
constexpr int kBlocksInFlight = 3; // random schedule: blocks interleaved at barriers

// Shared memory per block. Sources: CUDA C++ Programming Guide, "Technical Specifications per
// Compute Capability" (maximum shared memory per thread block: 163 KB on 8.0, 227 KB on 9.0;
// static __shared__ allocations are limited to 48 KB, more needs dynamic shared memory and
// cudaFuncAttributeMaxDynamicSharedMemorySize), and the Ampere / Hopper tuning guides (164 /
// 228 KB per SM, of which CUDA reserves 1 KB per block); an A100's deviceQuery reports
// 167936 bytes per SM.
struct Arch {
    int sm;
    size_t block_bytes;
};
constexpr Arch kArchs[] = {{80, 163 * 1024}, {90, 227 * 1024}};
constexpr size_t kStaticSharedBytes = 48 * 1024;

// Misuse of the execution model inside a kernel (a lane outside its own mask, ...): ends the
// launch with this message.
struct KernelFault : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A warp collective's kind ("__shfl_xor_sync", "ldmatrix.x4", ...) and call site: the lanes of
// one collective must all be at the same one. Stricter than sm_70+ hardware, which pairs equal
// instructions from different sites, but such pairing is undefined before sm_70 and is a bug in
// practice (values from unrelated code meet).
struct Site {
    const char *kind = "";
    const char *file = "";
    int line = 0;
    bool operator==(const Site &o) const {
        return line == o.line && (kind == o.kind || std::strcmp(kind, o.kind) == 0) &&
               (file == o.file || std::strcmp(file, o.file) == 0);
    }
    std::string str() const {
        const char *slash = std::strrchr(file, '/');
        return std::string(kind) + " at " + (slash ? slash + 1 : file) + ":" + std::to_string(line);
    }
};

// "0-15, 17" for a lane mask.
inline std::string lanes(uint32_t mask) {
    std::string out;
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        int e = l;
        while (e + 1 < 32 && (mask >> (e + 1) & 1u)) e++;
        out += (out.empty() ? "" : ", ") + std::to_string(l) + (e > l ? "-" + std::to_string(e) : "");
        l = e;
    }
    return out;
}

struct Block;

struct Warp {
    uint32_t alive = 0;   // lanes that have not returned
    uint32_t arrived = 0; // lanes waiting in the current collective
    uint32_t mask = 0;    // mask of the current collective
    Site site;            // and its kind and call site
    uint64_t generation = 0;
    alignas(16) unsigned char slots[2][32][kSlotBytes]; // double-buffered by generation parity
};

// A cp.async in flight: its destination and the 16 bytes read from the source at issue.
struct AsyncCopy {
    void *dst;
    unsigned char data[16];
};

struct Thread {
    uint3 tid;
    int linear = 0, lane = 0, warp = 0;
    Block *block = nullptr;
    bool done = false;
    bool abandoned = false; // stopped by a misaligned access: its fiber is never resumed
    enum Wait : uint8_t { kRunnable, kBarrier, kCollective } wait = kRunnable;
    uint64_t wait_generation = 0; // of the barrier or warp collective it waits for
    boost::context::fiber fiber, sink; // fiber mode: this thread, and the scheduler to return to
    // cp.async (hw.cuh): copies of the open group, then committed groups, oldest first.
    std::vector<AsyncCopy> cp_async_open;
    std::vector<std::vector<AsyncCopy>> cp_async_committed;
};

struct Block {
    uint3 idx;
    dim3 dim, grid;
    bool fibers = true;
    int alive = 0, arrived = 0;
    uint64_t generation = 0;
    std::string fault;   // first fault of a thread; ends the block
    std::mutex mu;       // thread mode only
    std::condition_variable cv;
    std::vector<Warp> warps;
};

inline thread_local Thread *current = nullptr;

inline Thread &self() {
    if (!current) throw std::logic_error("pmoe_host: CUDA built-in used outside a kernel launch");
    return *current;
}

// A kernel's static __shared__ memory: the ranges that hold it (span: their total size), and
// the size of the kernel's own arrays (bytes), which the limits check.
struct StaticShared {
    std::vector<std::pair<char *, size_t>> ranges;
    size_t span = 0, bytes = 0;
};

// The launch in progress (launches are serialised): its static and dynamic shared memory.
struct LaunchState {
    std::mutex mu;
    const StaticShared *fixed = nullptr;
    std::vector<unsigned char> dynamic_shared;
    size_t dynamic_bytes = 0;
    std::string last_error;
    std::map<std::string, uint64_t> launches; // per kernel name, for alternating schedules
};
inline LaunchState &launch_state() {
    static LaunchState s;
    return s;
}
inline void *dynamic_shared() {
    auto &s = launch_state();
    // 16-byte aligned, as the device guarantees for extern __shared__ arrays.
    uintptr_t p = reinterpret_cast<uintptr_t>(s.dynamic_shared.data());
    return reinterpret_cast<void *>((p + 15) & ~uintptr_t(15));
}

inline void poison(void *p, size_t bytes) {
    auto *w = static_cast<unsigned char *>(p);
    for (size_t i = 0; i + 4 <= bytes; i += 4) std::memcpy(w + i, &kPoison, 4);
}

inline void poison_shared() {
    auto &s = launch_state();
    for (const auto &r : s.fixed->ranges) poison(r.first, r.second);
    poison(dynamic_shared(), s.dynamic_bytes);
}

// Blocks in flight keep their shared memory here while another block runs.
inline void save_shared(std::vector<unsigned char> &to) {
    auto &s = launch_state();
    to.resize(s.fixed->span + s.dynamic_bytes);
    unsigned char *w = to.data();
    for (const auto &r : s.fixed->ranges) w = static_cast<unsigned char *>(std::memcpy(w, r.first, r.second)) + r.second;
    if (s.dynamic_bytes) std::memcpy(w, dynamic_shared(), s.dynamic_bytes);
}
inline void restore_shared(const std::vector<unsigned char> &from) {
    auto &s = launch_state();
    const unsigned char *p = from.data();
    for (const auto &r : s.fixed->ranges) {
        std::memcpy(r.first, p, r.second);
        p += r.second;
    }
    if (s.dynamic_bytes) std::memcpy(dynamic_shared(), p, s.dynamic_bytes);
}

// ---- address spaces, for ldmatrix and cp.async ----

// Fiber stacks (local memory) live in one reserved range, so a pointer is classified cheaply.
class StackPool {
  public:
    static constexpr size_t kStride = kStackBytes + 4096; // a guard page below each stack
    static constexpr size_t kStacks = size_t(kMaxThreads) * kBlocksInFlight;
    boost::context::stack_context get(size_t i) {
        if (!base_) {
            void *p = mmap(nullptr, kStride * kStacks, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            base_ = static_cast<char *>(p);
            for (size_t s = 0; s < kStacks; s++) mprotect(base_ + s * kStride, 4096, PROT_NONE);
        }
        boost::context::stack_context sc;
        sc.size = kStackBytes;
        sc.sp = base_ + i * kStride + kStride; // stacks grow down
        return sc;
    }
    bool contains(const void *p) const {
        const char *c = static_cast<const char *>(p);
        return base_ && c >= base_ && c < base_ + kStride * kStacks;
    }

  private:
    char *base_ = nullptr;
};

inline StackPool &stack_pool() {
    static StackPool pool;
    return pool;
}

inline bool in_shared(const void *p, size_t bytes) {
    const char *c = static_cast<const char *>(p);
    for (const auto &r : launch_state().fixed->ranges)
        if (c >= r.first && c + bytes <= r.first + r.second) return true;
    const char *d = static_cast<const char *>(dynamic_shared());
    return c >= d && c + bytes <= d + launch_state().dynamic_bytes;
}

inline std::string address(const void *p) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", p);
    return buf;
}

// The 16-byte operand `what` of `site` (of lane `lane`, or -1) must be 16-byte aligned and in
// shared memory (want_shared) or in global memory.
inline void check_address(const Site &site, const char *what, int lane, const void *p, bool want_shared) {
    const bool aligned = reinterpret_cast<uintptr_t>(p) % 16 == 0, shared = in_shared(p, 16);
    if (aligned && shared == want_shared && (want_shared || !stack_pool().contains(p))) return;
    const std::string operand = site.str() + ": " + what + (lane >= 0 ? " of lane " + std::to_string(lane) : "") +
                                " " + address(p);
    if (!aligned) throw KernelFault(operand + " is not 16-byte aligned");
    if (want_shared) throw KernelFault(operand + " is not in shared memory");
    throw KernelFault(operand + " is not in global memory (it is in " +
                      (shared ? "shared memory)" : "a thread's local memory)"));
}

// Fibers (default) or OS threads (PMOE_HOSTEXEC_THREADS=1, or set_thread_mode for a test).
inline std::atomic<int> &thread_mode_override() {
    static std::atomic<int> mode{-1};
    return mode;
}
inline bool thread_mode() {
    static const bool from_env = [] {
        const char *v = std::getenv("PMOE_HOSTEXEC_THREADS");
        return v && *v && std::strcmp(v, "0") != 0;
    }();
    const int mode = thread_mode_override().load();
    return mode >= 0 ? mode != 0 : from_env;
}

// Fiber schedules: in-order, random, or (default) alternating per launch of each kernel.
enum class Schedule { kAlternate, kInOrder, kRandom };
inline std::atomic<int> &schedule_override() { // a Schedule, or -1: PMOE_HOSTEXEC_SCHEDULE
    static std::atomic<int> schedule{-1};
    return schedule;
}
inline Schedule schedule_setting() {
    static const Schedule from_env = [] {
        const char *v = std::getenv("PMOE_HOSTEXEC_SCHEDULE");
        if (!v || !*v || std::strcmp(v, "alternate") == 0) return Schedule::kAlternate;
        if (std::strcmp(v, "in-order") == 0) return Schedule::kInOrder;
        if (std::strcmp(v, "random") == 0) return Schedule::kRandom;
        std::fprintf(stderr, "pmoe_host: PMOE_HOSTEXEC_SCHEDULE=%s is not in-order, random or alternate; "
                             "alternating\n", v);
        return Schedule::kAlternate;
    }();
    const int o = schedule_override().load();
    return o >= 0 ? Schedule(o) : from_env;
}
inline uint64_t base_seed() {
    static const uint64_t seed = [] {
        const char *v = std::getenv("PMOE_HOSTEXEC_SEED");
        return v && *v ? std::strtoull(v, nullptr, 0) : 1;
    }();
    return seed;
}

// The architecture whose shared-memory limit launches are held to (PMOE_HOSTEXEC_ARCH).
inline std::atomic<int> &arch_override() {
    static std::atomic<int> sm{-1};
    return sm;
}
inline const Arch &target_arch() {
    static const int from_env = [] {
        const char *v = std::getenv("PMOE_HOSTEXEC_ARCH");
        return v && *v ? std::atoi(v) : 80;
    }();
    const int sm = arch_override().load() >= 0 ? arch_override().load() : from_env;
    for (const Arch &a : kArchs)
        if (a.sm == sm) return a;
    return kArchs[0];
}

// splitmix64: seeds and random schedules.
struct Rng {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    template <typename T> void shuffle(std::vector<T> &v) {
        for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[next() % i]);
    }
};

// Thread mode reports a deadlock when a barrier has waited this long.
inline std::atomic<int> &deadlock_seconds() {
    static std::atomic<int> seconds{30};
    return seconds;
}

// ---- static shared memory per kernel, from the library's symbol table ----
// A function-local `static` is mangled "_ZZ" <the function's encoding> "E" <name>, so a
// kernel's own __shared__ arrays are the writable objects with its name as prefix: their sizes
// are what the limits check. They are not all in section pmoe_shared: GCC drops the section
// attribute of statics in templates (they land in .bss). A kernel's shared memory (poisoned
// per block, kept per block in flight, valid for ldmatrix and cp.async) is the section, for
// the arrays of __device__ helpers such as gemm_tile, plus its own arrays outside it. Without
// a symbol table (a stripped library) a kernel gets the section and its size is not checked.
class SharedSymbols {
  public:
    const StaticShared &of(const void *kernel) {
        std::lock_guard<std::mutex> lock(mu_);
        auto hit = cache_.find(kernel);
        if (hit != cache_.end()) return hit->second;
        StaticShared &out = cache_[kernel];
        char *const start = __start_pmoe_shared, *const stop = __stop_pmoe_shared;
        if (start && stop) out.ranges.emplace_back(start, size_t(stop - start));
        out.span = start && stop ? size_t(stop - start) : 0;
        Dl_info info{};
        if (!dladdr(kernel, &info) || !info.dli_fname) return out;
        load(info.dli_fname);
        auto fn = functions_.find(uint64_t(reinterpret_cast<uintptr_t>(kernel) - reinterpret_cast<uintptr_t>(info.dli_fbase)));
        if (fn == functions_.end()) return out;
        const std::string prefix = "_ZZ" + fn->second.substr(2) + "E";
        for (const Object &o : objects_) {
            if (o.name.compare(0, prefix.size(), prefix) != 0 || !o.size) continue;
            char *p = static_cast<char *>(info.dli_fbase) + o.address;
            if (!(start && p >= start && p < stop)) {
                out.ranges.emplace_back(p, o.size);
                out.span += o.size;
            }
            out.bytes += o.size;
        }
        return out;
    }

  private:
    struct Object {
        std::string name;
        uint64_t address, size;
    };

    void load(const char *path) {
        if (loaded_) return;
        loaded_ = true;
        std::ifstream in(path, std::ios::binary);
        const std::string elf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (elf.size() < sizeof(Elf64_Ehdr)) return;
        Elf64_Ehdr eh;
        std::memcpy(&eh, elf.data(), sizeof eh);
        if (eh.e_shoff == 0 || eh.e_shoff + uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > elf.size()) return;
        std::vector<Elf64_Shdr> sh(eh.e_shnum);
        std::memcpy(sh.data(), elf.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
        for (const Elf64_Shdr &table : sh) {
            if (table.sh_type != SHT_SYMTAB) continue;
            const char *strings = elf.data() + sh[table.sh_link].sh_offset;
            for (uint64_t off = table.sh_offset; off + sizeof(Elf64_Sym) <= table.sh_offset + table.sh_size;
                 off += sizeof(Elf64_Sym)) {
                Elf64_Sym sym;
                std::memcpy(&sym, elf.data() + off, sizeof sym);
                const char *name = strings + sym.st_name;
                if (std::strncmp(name, "_Z", 2) != 0 || !sym.st_value) continue;
                if (ELF64_ST_TYPE(sym.st_info) == STT_FUNC)
                    functions_[sym.st_value] = name;
                else if (ELF64_ST_TYPE(sym.st_info) == STT_OBJECT && name[2] == 'Z' && sym.st_shndx < sh.size() &&
                         (sh[sym.st_shndx].sh_flags & SHF_WRITE))
                    objects_.push_back({name, sym.st_value, sym.st_size});
            }
        }
    }

    std::mutex mu_;
    bool loaded_ = false;
    std::unordered_map<uint64_t, std::string> functions_; // address in the file -> mangled name
    std::vector<Object> objects_;                         // writable function-local statics
    std::unordered_map<const void *, StaticShared> cache_;
};

inline SharedSymbols &shared_symbols() {
    static SharedSymbols s;
    return s;
}

// ---- waiting: fibers yield to the block's scheduler, OS threads wait on the condvar ----

struct Abort {}; // unwinds a thread of a block that has faulted (thread mode)

// Lock held by a thread while it touches block state; a no-op for fibers (one OS thread).
struct BlockLock {
    Block &b;
    std::unique_lock<std::mutex> lk;
    explicit BlockLock(Block &blk) : b(blk), lk(blk.mu, std::defer_lock) {
        if (!b.fibers) lk.lock();
    }
};

// Waits until `generation` (the block's barrier or the warp's collective counter) moves past
// `seen`. A fiber tells the scheduler what it waits for, so it is resumed only when runnable.
inline void wait_for(BlockLock &l, Thread::Wait kind, const uint64_t &generation, uint64_t seen) {
    Thread &t = self();
    if (l.b.fibers) {
        if (generation == seen) {
            t.wait = kind;
            t.wait_generation = seen;
            t.sink = std::move(t.sink).resume();
            t.wait = Thread::kRunnable;
        }
        return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(deadlock_seconds().load());
    while (generation == seen) {
        if (!l.b.fault.empty()) throw Abort{};
        if (l.b.cv.wait_until(l.lk, deadline) == std::cv_status::timeout && generation == seen) {
            l.b.fault = "deadlock: a barrier or warp collective waited " +
                        std::to_string(deadlock_seconds().load()) + " s";
            l.b.cv.notify_all();
            throw Abort{};
        }
    }
}

inline void release_if_complete(Block &b) {
    if (b.arrived > 0 && b.arrived == b.alive) {
        b.arrived = 0;
        b.generation++;
        if (!b.fibers) b.cv.notify_all();
    }
}

inline void release_if_complete(Block &b, Warp &w) {
    if (w.arrived && (w.mask & ~w.arrived) == 0) {
        w.arrived = 0;
        w.generation++;
        if (!b.fibers) b.cv.notify_all();
    }
}

inline void syncthreads() {
    Thread &t = self();
    Block &b = *t.block;
    BlockLock l(b);
    const uint64_t gen = b.generation;
    b.arrived++;
    release_if_complete(b);
    wait_for(l, Thread::kBarrier, b.generation, gen);
}

// The lanes of `mask` meet at `site`; each contributes `bytes` from `mine`, then `read` sees
// all 32 slots (only those of lanes in the mask are meaningful). Every lane of the mask must
// call it, none may have returned: CUDA leaves a value read from an exited lane undefined, and
// a mask naming one is almost always a `return` before a full-warp collective.
template <typename Read>
void warp_collective(uint32_t mask, const void *mine, size_t bytes, const Site &site, Read read) {
    Thread &t = self();
    Block &b = *t.block;
    Warp &w = b.warps[t.warp];
    BlockLock l(b);
    const uint32_t bit = 1u << t.lane;
    if (!(mask & bit))
        throw KernelFault(site.str() + ": lane " + std::to_string(t.lane) +
                          " calls with a mask that does not include it");
    if (const uint32_t gone = mask & ~w.alive)
        throw KernelFault(site.str() + ": warp " + std::to_string(t.warp) + "'s mask names lanes " +
                          lanes(gone) + ", which exited (or are past the end of the block)");
    if (w.arrived && w.mask != mask)
        throw KernelFault(site.str() + ": lanes of warp " + std::to_string(t.warp) +
                          " disagree on the mask (lanes " + lanes(w.arrived) + " wait in " + w.site.str() + ")");
    if (w.arrived && !(w.site == site))
        throw KernelFault("warp " + std::to_string(t.warp) + ": lane " + std::to_string(t.lane) + " calls " +
                          site.str() + " while lanes " + lanes(w.arrived) + " wait in " + w.site.str() +
                          " (the lanes of a collective must meet at one call)");
    const uint64_t gen = w.generation;
    unsigned char(&slots)[32][kSlotBytes] = w.slots[gen & 1];
    if (bytes) std::memcpy(slots[t.lane], mine, bytes);
    w.mask = mask;
    w.site = site;
    w.arrived |= bit;
    release_if_complete(b, w);
    wait_for(l, Thread::kCollective, w.generation, gen);
    // The other buffer serves the next collective; this one is rewritten only after every lane
    // has arrived at the next one, that is, after every lane has read it.
    read(slots);
}

inline void record_fault_locked(Block &b, const std::string &what) {
    if (b.fault.empty()) b.fault = what;
    if (!b.fibers) b.cv.notify_all();
}

inline void record_fault(Block &b, const std::string &what) {
    BlockLock l(b);
    record_fault_locked(b, what);
}

inline void thread_exit(Thread &t) {
    Block &b = *t.block;
    BlockLock l(b);
    t.done = true;
    b.alive--;
    Warp &w = b.warps[t.warp];
    const uint32_t bit = 1u << t.lane;
    w.alive &= ~bit;
    if (w.arrived && (w.mask & bit) && !(w.arrived & bit))
        record_fault_locked(b, "lane " + std::to_string(t.lane) + " of warp " + std::to_string(t.warp) +
                                   " exited while lanes " + lanes(w.arrived) + " wait for it in " + w.site.str());
    release_if_complete(b);
}

// Runs a thread's kernel body, turning whatever it throws into the block's fault.
template <typename Body> void run_thread(Thread &t, const Body &body) {
    try {
        body();
    } catch (const boost::context::detail::forced_unwind &) {
        throw; // a fiber being destroyed after a fault or deadlock
    } catch (const Abort &) {
    } catch (const std::exception &e) {
        record_fault(*t.block, e.what());
    } catch (...) {
        record_fault(*t.block, "unknown exception in kernel");
    }
    thread_exit(t);
}

// Ends the calling kernel thread without unwinding its stack (a sanitizer hook, called from
// instrumented code that cannot throw): fibers are left suspended and never resumed; an OS
// thread cannot be, so thread mode stops the process. Outside a kernel it returns false.
inline bool abandon_thread(const std::string &what) {
    if (!current) return false;
    Thread &t = *current;
    if (!t.block->fibers) {
        std::fprintf(stderr, "pmoe_host: %s (thread mode cannot recover from this)\n", what.c_str());
        std::abort();
    }
    record_fault(*t.block, what);
    t.abandoned = true;
    for (;;) t.sink = std::move(t.sink).resume();
}

// A Boost.Context stack allocator handing out one pooled stack.
struct PooledStack {
    boost::context::stack_context sc;
    boost::context::stack_context allocate() { return sc; }
    void deallocate(boost::context::stack_context &) noexcept {}
};

// ---- running blocks ----

using Body = std::function<void()>;

inline std::string describe_block(const Block &b) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "block (%u, %u, %u)", b.idx.x, b.idx.y, b.idx.z);
    return buf;
}

// One block: its threads, and (fibers) the scheduler that resumes them.
struct BlockRun {
    Block b;
    std::vector<Thread> threads;
    std::vector<unsigned char> saved_shared; // while another block in flight runs
    bool random = false;
    Rng rng{0};
    std::vector<int> warp_order, lane_order;

    BlockRun(uint3 idx, dim3 dim, dim3 grid, bool fibers) : threads(size_t(dim.x) * dim.y * dim.z) {
        const int n = int(threads.size());
        b.idx = idx;
        b.dim = dim;
        b.grid = grid;
        b.fibers = fibers;
        b.warps = std::vector<Warp>((n + 31) / 32);
        b.alive = n;
        for (int i = 0; i < n; i++) {
            Thread &t = threads[i];
            t.linear = i;
            t.tid = make_uint3(i % dim.x, (i / dim.x) % dim.y, i / (dim.x * dim.y));
            t.lane = i % 32;
            t.warp = i / 32;
            t.block = &b;
            b.warps[t.warp].alive |= 1u << t.lane;
        }
        for (int w = 0; w < int(b.warps.size()); w++) warp_order.push_back(w);
    }

    void start_fibers(size_t slot, const Body &body) {
        for (size_t i = 0; i < threads.size(); i++) {
            Thread &t = threads[i];
            t.fiber = boost::context::fiber(std::allocator_arg,
                                            PooledStack{stack_pool().get(slot * kMaxThreads + i)},
                                            [&t, &body](boost::context::fiber &&sink) {
                                                t.sink = std::move(sink);
                                                run_thread(t, body);
                                                return std::move(t.sink);
                                            });
        }
    }

    bool runnable(const Thread &t) const {
        if (t.done || t.abandoned) return false;
        switch (t.wait) {
        case Thread::kBarrier: return b.generation != t.wait_generation;
        case Thread::kCollective: return b.warps[t.warp].generation != t.wait_generation;
        default: return true;
        }
    }

    // Runs warp w until none of its lanes can move; false if none could.
    bool run_warp(int w) {
        const int first = 32 * w, count = std::min(32, int(threads.size()) - first);
        lane_order.resize(count);
        bool moved = false;
        for (bool again = true; again && b.fault.empty();) {
            again = false;
            for (int l = 0; l < count; l++) lane_order[l] = l;
            if (random) rng.shuffle(lane_order);
            for (int l : lane_order) {
                Thread &t = threads[first + l];
                if (!runnable(t)) continue;
                current = &t;
                t.fiber = std::move(t.fiber).resume();
                current = nullptr;
                again = moved = true;
                if (!b.fault.empty()) break;
            }
        }
        return moved;
    }

    // Fibers: runs until the block passes a barrier, finishes or faults; true when it is over.
    bool step() {
        const uint64_t barrier = b.generation;
        while (b.fault.empty() && b.generation == barrier) {
            if (random) rng.shuffle(warp_order);
            bool moved = false;
            for (int w : warp_order) {
                moved |= run_warp(w);
                if (!b.fault.empty()) break;
            }
            if (!moved) {
                if (b.alive > 0 && b.fault.empty())
                    b.fault = "deadlock: every remaining thread waits at a barrier or warp collective "
                              "that the others never reach";
                break;
            }
        }
        return !b.fault.empty() || b.alive == 0;
    }

    void finish_fibers() {
        for (Thread &t : threads) {
            current = &t;
            if (t.abandoned) // its stack holds frames that cannot unwind: leave it suspended
                new boost::context::fiber(std::move(t.fiber));
            else
                t.fiber = {}; // unwinds the stack of a thread left waiting after a fault
        }
        current = nullptr;
    }

    void run_threads(const Body &body) {
        std::vector<std::thread> os;
        os.reserve(threads.size());
        for (Thread &t : threads)
            os.emplace_back([&t, &body] {
                current = &t;
                run_thread(t, body);
                current = nullptr;
            });
        for (auto &th : os) th.join();
    }
};

inline std::string check_config(dim3 grid, dim3 block, size_t smem, size_t static_smem) {
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
        return "invalid grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
               std::to_string(grid.z) + ")";
    if (threads == 0 || threads > kMaxThreads || block.z > 64)
        return "invalid block (" + std::to_string(block.x) + ", " + std::to_string(block.y) +
               ", " + std::to_string(block.z) + ")";
    if (static_smem > kStaticSharedBytes)
        return std::to_string(static_smem) + " bytes of static __shared__ memory exceed the 48 KiB (" +
               std::to_string(kStaticSharedBytes) + " bytes) allowed (use dynamic shared memory)";
    const Arch &arch = target_arch();
    if (static_smem + smem > arch.block_bytes)
        return std::to_string(static_smem + smem) + " bytes of shared memory (" + std::to_string(static_smem) +
               " static + " + std::to_string(smem) + " dynamic) exceed sm_" + std::to_string(arch.sm) +
               "'s " + std::to_string(arch.block_bytes) + " bytes (" + std::to_string(arch.block_bytes / 1024) +
               " KiB) per block";
    return "";
}

// Runs body() as every thread of every block; false (with last_error()) on a fault.
inline bool run_grid(const char *name, dim3 grid, dim3 block, size_t smem, const StaticShared &fixed,
                     const Body &body) {
    auto &s = launch_state();
    std::lock_guard<std::mutex> serial(s.mu);
    s.last_error.clear();
    std::string error = check_config(grid, block, smem, fixed.bytes);
    if (!error.empty()) {
        s.last_error = std::string(name) + ": " + error;
        return false;
    }
    s.fixed = &fixed;
    s.dynamic_bytes = smem;
    s.dynamic_shared.assign(smem + 16, 0);
    const bool fibers = !thread_mode();
    const uint64_t launch = s.launches[name]++;
    const Schedule setting = schedule_setting();
    const bool random = fibers && (setting == Schedule::kRandom || (setting == Schedule::kAlternate && launch % 2 == 1));
    Rng rng{base_seed() ^ std::hash<std::string>()(name) ^ (launch * 0x632be59bd9b4e019ull)};
    const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
    std::vector<uint32_t> order;
    if (random) {
        order.resize(blocks);
        for (uint64_t i = 0; i < blocks; i++) order[i] = uint32_t(i);
        rng.shuffle(order);
    }
    auto index = [&](uint64_t i) {
        const uint64_t l = random ? order[i] : i;
        return make_uint3(unsigned(l % grid.x), unsigned(l / grid.x % grid.y), unsigned(l / (uint64_t(grid.x) * grid.y)));
    };
    auto fail = [&](const BlockRun &r) {
        s.last_error = std::string(name) + ": " + describe_block(r.b) +
                       (random ? " (random schedule)" : fibers ? " (in-order schedule)" : "") + ": " + r.b.fault;
        return false;
    };
    if (!fibers) {
        for (uint64_t i = 0; i < blocks; i++) {
            BlockRun r(index(i), block, grid, false);
            poison_shared();
            r.run_threads(body);
            if (!r.b.fault.empty()) return fail(r);
        }
        return true;
    }
    // Fibers: up to kBlocksInFlight blocks (random schedule) or one (in-order); the one that
    // runs owns the shared memory, the others keep theirs in saved_shared.
    const size_t in_flight = random ? kBlocksInFlight : 1;
    std::vector<std::unique_ptr<BlockRun>> runs(in_flight);
    uint64_t next = 0;
    int active = -1;
    bool ok = true;
    for (;;) {
        for (size_t slot = 0; slot < in_flight; slot++) {
            if (runs[slot] || next == blocks) continue;
            if (active >= 0) save_shared(runs[active]->saved_shared);
            active = -1;
            runs[slot] = std::make_unique<BlockRun>(index(next++), block, grid, true);
            runs[slot]->random = random;
            runs[slot]->rng = Rng{rng.next()};
            runs[slot]->start_fibers(slot, body);
            poison_shared();
            save_shared(runs[slot]->saved_shared);
        }
        std::vector<int> live;
        for (size_t slot = 0; slot < in_flight; slot++)
            if (runs[slot]) live.push_back(int(slot));
        if (live.empty()) break;
        const int pick = live[random ? rng.next() % live.size() : 0];
        if (pick != active) {
            if (active >= 0 && runs[active]) save_shared(runs[active]->saved_shared);
            restore_shared(runs[pick]->saved_shared);
            active = pick;
        }
        BlockRun &r = *runs[pick];
        if (!r.step()) continue;
        r.finish_fibers();
        if (!r.b.fault.empty()) ok = ok && fail(r);
        runs[pick].reset();
        active = -1;
        if (!ok) {
            for (auto &other : runs)
                if (other) other->finish_fibers();
            return false;
        }
    }
    return true;
}

inline const std::string &last_error() { return launch_state().last_error; }

// kernel<<<grid, block, smem>>>(args...): the arguments are converted to the kernel's parameter
// types once, as CUDA does, and every thread calls the kernel with its own copies.
template <typename... P, typename... A>
bool launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
            A &&...args) {
    const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    const StaticShared &fixed = shared_symbols().of(reinterpret_cast<const void *>(kernel));
    return run_grid(name, grid, block, smem, fixed, [&] { std::apply(kernel, params); });
}

// ---- cp.async (hw.cuh): read at issue, land at the wait that covers the group ----

inline void cp_async_issue(void *dst, const void *src, const Site &site) {
    Thread &t = self();
    check_address(site, "destination", t.lane, dst, true);
    check_address(site, "source", t.lane, src, false);
    AsyncCopy c;
    c.dst = dst;
    std::memcpy(c.data, src, 16);
    poison(dst, 16); // until the wait: a read before it, or a write racing it, shows
    t.cp_async_open.push_back(c);
}

inline void cp_async_commit() {
    Thread &t = self();
    t.cp_async_committed.push_back(std::move(t.cp_async_open));
    t.cp_async_open.clear();
}

inline void cp_async_wait(size_t pending) {
    auto &groups = self().cp_async_committed;
    while (groups.size() > pending) {
        for (const AsyncCopy &c : groups.front()) std::memcpy(c.dst, c.data, 16);
        groups.erase(groups.begin());
    }
}

// ---- warp collectives on values ----

template <typename T> T shuffle_from(uint32_t mask, T v, int src, bool valid, const Site &site) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= kSlotBytes, "shuffle type");
    T out = v;
    warp_collective(mask, &v, sizeof(T), site, [&](const unsigned char(&slots)[32][kSlotBytes]) {
        if (!valid) return;
        if (!(mask & (1u << src)))
            throw KernelFault(site.str() + ": reads lane " + std::to_string(src) + ", outside the mask");
        std::memcpy(&out, slots[src], sizeof(T));
    });
    return out;
}

inline uint32_t ballot(uint32_t mask, bool pred, const Site &site) {
    uint32_t out = 0;
    const unsigned char p = pred;
    warp_collective(mask, &p, 1, site, [&](const unsigned char(&slots)[32][kSlotBytes]) {
        for (int l = 0; l < 32; l++)
            if ((mask >> l & 1u) && slots[l][0]) out |= 1u << l;
    });
    return out;
}

template <typename T, typename Op> T warp_reduce(uint32_t mask, T v, Op op, const Site &site) {
    T out{};
    bool first = true;
    warp_collective(mask, &v, sizeof(T), site, [&](const unsigned char(&slots)[32][kSlotBytes]) {
        for (int l = 0; l < 32; l++) {
            if (!(mask >> l & 1u)) continue;
            T x;
            std::memcpy(&x, slots[l], sizeof(T));
            out = first ? x : op(out, x);
            first = false;
        }
    });
    return out;
}

// ---- atomics: GCC builtins on host memory ----

template <typename T> T atomic_add(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

template <typename F, typename T, typename Op> T atomic_update_float(T *p, Op op) {
    static_assert(sizeof(T) == sizeof(F), "bits type");
    F old_bits = __atomic_load_n(reinterpret_cast<F *>(p), __ATOMIC_SEQ_CST), new_bits;
    T old_val;
    do {
        std::memcpy(&old_val, &old_bits, sizeof(T));
        const T next = op(old_val);
        std::memcpy(&new_bits, &next, sizeof(T));
    } while (!__atomic_compare_exchange_n(reinterpret_cast<F *>(p), &old_bits, new_bits, false,
                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return old_val;
}

template <typename T> T atomic_max(T *p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
template <typename T> T atomic_min(T *p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}

} // namespace pmoe_host

// ---- the CUDA device API, on the host ----

#define PMOE_SITE(kind) ::pmoe_host::Site{kind, pmoe_file, pmoe_line}

inline void __syncthreads() { ::pmoe_host::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu, PMOE_SITE_PARAMS) {
    ::pmoe_host::warp_collective(mask, nullptr, 0, PMOE_SITE("__syncwarp"),
                                 [](const unsigned char(&)[32][::pmoe_host::kSlotBytes]) {});
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T> T __shfl_sync(unsigned mask, T v, int src, int width = 32, PMOE_SITE_PARAMS) {
    const int lane = ::pmoe_host::self().lane, base = lane & ~(width - 1);
    return ::pmoe_host::shuffle_from(mask, v, base + (src & (width - 1)), true, PMOE_SITE("__shfl_sync"));
}
template <typename T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, PMOE_SITE_PARAMS) {
    const int lane = ::pmoe_host::self().lane;
    const bool valid = (lane & (width - 1)) >= int(delta);
    return ::pmoe_host::shuffle_from(mask, v, lane - int(delta), valid, PMOE_SITE("__shfl_up_sync"));
}
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, PMOE_SITE_PARAMS) {
    const int lane = ::pmoe_host::self().lane;
    const bool valid = (lane & (width - 1)) + int(delta) < width;
    return ::pmoe_host::shuffle_from(mask, v, lane + int(delta), valid, PMOE_SITE("__shfl_down_sync"));
}
template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, PMOE_SITE_PARAMS) {
    const int lane = ::pmoe_host::self().lane, src = lane ^ lane_mask;
    const bool valid = (src & ~(width - 1)) == (lane & ~(width - 1));
    return ::pmoe_host::shuffle_from(mask, v, src, valid, PMOE_SITE("__shfl_xor_sync"));
}
inline unsigned __ballot_sync(unsigned mask, int pred, PMOE_SITE_PARAMS) {
    return ::pmoe_host::ballot(mask, pred != 0, PMOE_SITE("__ballot_sync"));
}
inline int __any_sync(unsigned mask, int pred, PMOE_SITE_PARAMS) {
    return ::pmoe_host::ballot(mask, pred != 0, PMOE_SITE("__any_sync")) != 0;
}
inline int __all_sync(unsigned mask, int pred, PMOE_SITE_PARAMS) {
    return ::pmoe_host::ballot(mask, pred != 0, PMOE_SITE("__all_sync")) == mask;
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, PMOE_SITE_PARAMS) {
    return ::pmoe_host::warp_reduce(mask, v, [](unsigned a, unsigned b) { return a + b; },
                                    PMOE_SITE("__reduce_add_sync"));
}
inline int __reduce_add_sync(unsigned mask, int v, PMOE_SITE_PARAMS) {
    return int(__reduce_add_sync(mask, unsigned(v), pmoe_file, pmoe_line));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, PMOE_SITE_PARAMS) {
    return ::pmoe_host::warp_reduce(mask, v, [](unsigned a, unsigned b) { return a > b ? a : b; },
                                    PMOE_SITE("__reduce_max_sync"));
}
inline int __reduce_max_sync(unsigned mask, int v, PMOE_SITE_PARAMS) {
    return ::pmoe_host::warp_reduce(mask, v, [](int a, int b) { return a > b ? a : b; }, PMOE_SITE("__reduce_max_sync"));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, PMOE_SITE_PARAMS) {
    return ::pmoe_host::warp_reduce(mask, v, [](unsigned a, unsigned b) { return a < b ? a : b; },
                                    PMOE_SITE("__reduce_min_sync"));
}
inline int __reduce_min_sync(unsigned mask, int v, PMOE_SITE_PARAMS) {
    return ::pmoe_host::warp_reduce(mask, v, [](int a, int b) { return a < b ? a : b; }, PMOE_SITE("__reduce_min_sync"));
}

template <typename T> unsigned __match_any_sync(unsigned mask, T v, PMOE_SITE_PARAMS) {
    static_assert(std::is_integral<T>::value, "__match_any_sync takes an integer");
    unsigned out = 0;
    ::pmoe_host::warp_collective(mask, &v, sizeof(T), PMOE_SITE("__match_any_sync"),
                                 [&](const unsigned char(&slots)[32][::pmoe_host::kSlotBytes]) {
        for (int l = 0; l < 32; l++) {
            T x;
            std::memcpy(&x, slots[l], sizeof(T));
            if ((mask >> l & 1u) && x == v) out |= 1u << l;
        }
    });
    return out;
}

inline int atomicAdd(int *p, int v) { return ::pmoe_host::atomic_add(p, v); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return ::pmoe_host::atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
    return ::pmoe_host::atomic_add(p, v);
}
inline float atomicAdd(float *p, float v) {
    return ::pmoe_host::atomic_update_float<uint32_t>(p, [v](float x) { return x + v; });
}
inline double atomicAdd(double *p, double v) {
    return ::pmoe_host::atomic_update_float<uint64_t>(p, [v](double x) { return x + v; });
}
inline int atomicMax(int *p, int v) { return ::pmoe_host::atomic_max(p, v); }
inline unsigned atomicMax(unsigned *p, unsigned v) { return ::pmoe_host::atomic_max(p, v); }
inline int atomicMin(int *p, int v) { return ::pmoe_host::atomic_min(p, v); }
inline unsigned atomicMin(unsigned *p, unsigned v) { return ::pmoe_host::atomic_min(p, v); }
inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v) {
    return ::pmoe_host::atomic_min(p, v);
}
inline int atomicCAS(int *p, int expected, int desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
inline int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }

// ---- device intrinsics the kernels use ----

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline float __int_as_float(int x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}
inline int __float_as_int(float f) {
    int x;
    std::memcpy(&x, &f, 4);
    return x;
}
inline unsigned __float_as_uint(float f) { return unsigned(__float_as_int(f)); }
inline float __uint_as_float(unsigned x) { return __int_as_float(int(x)); }
template <typename T> T __ldg(const T *p) { return *p; }
using std::isfinite;
using std::max;
using std::min;
