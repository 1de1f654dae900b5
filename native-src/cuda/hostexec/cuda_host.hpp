// cuda_host.hpp - CUDA's execution model on the CPU, so the project's .cu kernels compile with
// the host C++ compiler and run in CI, where there is no GPU (build flag PMOE_HOST_EXEC).
//
// What it provides:
//  - threadIdx / blockIdx / blockDim / gridDim / warpSize;
//  - a launch that runs the blocks of a grid one after another, the threads of a block as
//    fibers (Boost.Context; default) or as OS threads (PMOE_HOSTEXEC_THREADS=1, for running a
//    test under ThreadSanitizer, which the harness's mutex/condvar barriers make race-precise);
//  - __syncthreads as a barrier over the threads still running (a thread that returned leaves
//    every barrier), deadlock detection (fibers: a round without progress; threads: a timeout);
//  - static __shared__ arrays (placed in the ELF section pmoe_shared) and dynamic shared memory
//    (PMOE_DYNAMIC_SHARED), both filled with a poison pattern (NaN as f32) before every block,
//    so a value read before it was written in this block is visibly wrong;
//  - warp collectives (__syncwarp, shuffles, votes, __reduce_*_sync) that synchronise the lanes
//    named in the mask, nothing more: lanes are otherwise unsynchronised, as on Volta and later;
//  - atomics (real atomics, so the OS-thread mode is correct too).
// Blocks run one at a time, and so do launches (one process-wide mutex): "device memory" is
// host memory and shared memory is one static section.
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

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
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

extern "C" {
// Bounds of the static shared section, defined by the linker (weak: a library may have none).
extern char __start_pmoe_shared[] __attribute__((weak, visibility("hidden")));
extern char __stop_pmoe_shared[] __attribute__((weak, visibility("hidden")));
}

namespace pmoe_host {

constexpr uint32_t kPoison = 0x7fbadbadu; // NaN as f32, 2142952365 as int32
constexpr size_t kMaxSharedBytes = 227 * 1024;
constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kSlotBytes = 64; // payload of one lane in a warp collective

// Misuse of the execution model inside a kernel (a lane outside its own mask, ...): ends the
// launch with this message.
struct KernelFault : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Block;

struct Warp {
    uint32_t alive = 0;   // lanes that have not returned
    uint32_t arrived = 0; // lanes waiting in the current collective
    uint32_t mask = 0;    // mask of the current collective
    uint64_t generation = 0;
    alignas(16) unsigned char slots[2][32][kSlotBytes]; // double-buffered by generation parity
};

struct Thread {
    uint3 tid;
    int linear = 0, lane = 0, warp = 0;
    Block *block = nullptr;
    bool done = false;
    boost::context::fiber fiber, sink; // fiber mode: this thread, and the scheduler to return to
    // cp.async (hw.cuh): copies of the open group, then committed groups, oldest first. They
    // happen only at the wait that covers them, so a read before that wait sees the poison.
    struct AsyncCopy {
        void *dst;
        const void *src;
    };
    std::vector<AsyncCopy> cp_async_open;
    std::vector<std::vector<AsyncCopy>> cp_async_committed;
};

struct Block {
    uint3 idx;
    dim3 dim, grid;
    bool fibers = true;
    int alive = 0, arrived = 0;
    uint64_t generation = 0;
    uint64_t events = 0; // arrivals, releases and exits: a fiber round without any is a deadlock
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

// The launch in progress (launches are serialised): its dynamic shared memory.
struct LaunchState {
    std::mutex mu;
    std::vector<unsigned char> dynamic_shared;
    size_t dynamic_bytes = 0;
    std::string last_error;
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
    if (__start_pmoe_shared && __stop_pmoe_shared)
        poison(__start_pmoe_shared, size_t(__stop_pmoe_shared - __start_pmoe_shared));
    auto &s = launch_state();
    poison(dynamic_shared(), s.dynamic_bytes);
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

// Thread mode reports a deadlock when a barrier has waited this long.
inline std::atomic<int> &deadlock_seconds() {
    static std::atomic<int> seconds{30};
    return seconds;
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

template <typename Done> void wait_until(BlockLock &l, Done done) {
    Thread &t = self();
    if (l.b.fibers) {
        while (!done()) t.sink = std::move(t.sink).resume();
        return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(deadlock_seconds().load());
    while (!done()) {
        if (!l.b.fault.empty()) throw Abort{};
        if (l.b.cv.wait_until(l.lk, deadline) == std::cv_status::timeout && !done()) {
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
        b.events++;
        if (!b.fibers) b.cv.notify_all();
    }
}

inline void release_if_complete(Block &b, Warp &w) {
    if (w.arrived && (w.mask & w.alive & ~w.arrived) == 0) {
        w.arrived = 0;
        w.generation++;
        b.events++;
        if (!b.fibers) b.cv.notify_all();
    }
}

inline void syncthreads() {
    Thread &t = self();
    Block &b = *t.block;
    BlockLock l(b);
    const uint64_t gen = b.generation;
    b.arrived++;
    b.events++;
    release_if_complete(b);
    wait_until(l, [&] { return b.generation != gen; });
}

// The lanes of `mask` meet; each contributes `bytes` from `mine`, then `read` sees all 32 slots
// (only those of lanes in the mask are meaningful). Every lane of the mask must call it.
template <typename Read>
void warp_collective(uint32_t mask, const void *mine, size_t bytes, Read read) {
    Thread &t = self();
    Block &b = *t.block;
    Warp &w = b.warps[t.warp];
    BlockLock l(b);
    const uint32_t bit = 1u << t.lane;
    if (!(mask & bit))
        throw KernelFault("warp collective: lane " + std::to_string(t.lane) +
                          " calls with a mask that does not include it");
    if (w.arrived && w.mask != mask)
        throw KernelFault("warp collective: lanes of warp " + std::to_string(t.warp) +
                          " disagree on the mask");
    const uint64_t gen = w.generation;
    unsigned char(&slots)[32][kSlotBytes] = w.slots[gen & 1];
    if (bytes) std::memcpy(slots[t.lane], mine, bytes);
    w.mask = mask;
    w.arrived |= bit;
    b.events++;
    release_if_complete(b, w);
    wait_until(l, [&] { return w.generation != gen; });
    // The other buffer serves the next collective; this one is rewritten only after every lane
    // has arrived at the next one, that is, after every lane has read it.
    read(slots);
}

inline void thread_exit(Thread &t) {
    Block &b = *t.block;
    BlockLock l(b);
    t.done = true;
    b.alive--;
    b.warps[t.warp].alive &= ~(1u << t.lane);
    b.events++;
    release_if_complete(b, b.warps[t.warp]);
    release_if_complete(b);
}

inline void record_fault(Block &b, const std::string &what) {
    BlockLock l(b);
    if (b.fault.empty()) b.fault = what;
    if (!b.fibers) b.cv.notify_all();
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

// ---- stacks for fibers: mmap'ed once with a guard page, reused by every block ----

class StackPool {
  public:
    boost::context::stack_context get(size_t i) {
        while (stacks_.size() <= i) {
            void *p = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            mprotect(p, 4096, PROT_NONE); // stacks grow down: the guard is the lowest page
            stacks_.push_back(p);
        }
        boost::context::stack_context sc;
        sc.size = kStackBytes;
        sc.sp = static_cast<char *>(stacks_[i]) + 4096 + kStackBytes;
        return sc;
    }

  private:
    std::vector<void *> stacks_;
};

inline StackPool &stack_pool() {
    static StackPool pool;
    return pool;
}

// A Boost.Context stack allocator handing out one pooled stack.
struct PooledStack {
    boost::context::stack_context sc;
    boost::context::stack_context allocate() { return sc; }
    void deallocate(boost::context::stack_context &) noexcept {}
};

// ---- running one block ----

using Body = std::function<void()>;

inline void run_block_fibers(Block &b, std::vector<Thread> &threads, const Body &body) {
    for (size_t i = 0; i < threads.size(); i++) {
        Thread &t = threads[i];
        t.fiber = boost::context::fiber(std::allocator_arg, PooledStack{stack_pool().get(i)},
                                        [&t, &body](boost::context::fiber &&sink) {
                                            t.sink = std::move(sink);
                                            run_thread(t, body);
                                            return std::move(t.sink);
                                        });
    }
    for (;;) {
        const uint64_t events = b.events;
        bool alive = false;
        for (Thread &t : threads) {
            if (t.done) continue;
            current = &t;
            t.fiber = std::move(t.fiber).resume();
            current = nullptr;
            alive |= !t.done;
            if (!b.fault.empty()) break;
        }
        if (!b.fault.empty() || !alive) break;
        if (b.events == events) {
            b.fault = "deadlock: every remaining thread waits at a barrier or warp collective "
                      "that the others never reach";
            break;
        }
    }
    for (Thread &t : threads) { // unwinds the stacks of threads left waiting after a fault
        current = &t;
        t.fiber = {};
    }
    current = nullptr;
}

inline void run_block_threads(std::vector<Thread> &threads, const Body &body) {
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

inline std::string describe_block(const Block &b) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "block (%u, %u, %u)", b.idx.x, b.idx.y, b.idx.z);
    return buf;
}

inline bool run_block(Block &b, const Body &body, std::string &error) {
    const int n = int(b.dim.x * b.dim.y * b.dim.z);
    std::vector<Thread> threads(n);
    b.warps = std::vector<Warp>((n + 31) / 32);
    b.alive = n;
    for (int i = 0; i < n; i++) {
        Thread &t = threads[i];
        t.linear = i;
        t.tid = make_uint3(i % b.dim.x, (i / b.dim.x) % b.dim.y, i / (b.dim.x * b.dim.y));
        t.lane = i % 32;
        t.warp = i / 32;
        t.block = &b;
        b.warps[t.warp].alive |= 1u << t.lane;
    }
    if (b.fibers)
        run_block_fibers(b, threads, body);
    else
        run_block_threads(threads, body);
    if (b.fault.empty()) return true;
    error = describe_block(b) + ": " + b.fault;
    return false;
}

inline std::string check_config(dim3 grid, dim3 block, size_t smem) {
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
        return "invalid grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
               std::to_string(grid.z) + ")";
    if (threads == 0 || threads > 1024 || block.z > 64)
        return "invalid block (" + std::to_string(block.x) + ", " + std::to_string(block.y) +
               ", " + std::to_string(block.z) + ")";
    if (smem > kMaxSharedBytes) return "dynamic shared memory " + std::to_string(smem) + " > 227 KiB";
    return "";
}

// Runs body() as every thread of every block; false (with last_error()) on a fault.
inline bool run_grid(const char *name, dim3 grid, dim3 block, size_t smem, const Body &body) {
    auto &s = launch_state();
    std::lock_guard<std::mutex> serial(s.mu);
    s.last_error.clear();
    std::string error = check_config(grid, block, smem);
    if (!error.empty()) {
        s.last_error = std::string(name) + ": " + error;
        return false;
    }
    s.dynamic_bytes = smem;
    s.dynamic_shared.assign(smem + 16, 0);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                Block b;
                b.idx = make_uint3(x, y, z);
                b.dim = block;
                b.grid = grid;
                b.fibers = !thread_mode();
                poison_shared();
                if (!run_block(b, body, error)) {
                    s.last_error = std::string(name) + ": " + error;
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
    return run_grid(name, grid, block, smem, [&] { std::apply(kernel, params); });
}

// ---- warp collectives on values ----

template <typename T> T shuffle_from(uint32_t mask, T v, int src, bool valid) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= kSlotBytes, "shuffle type");
    T out = v;
    warp_collective(mask, &v, sizeof(T), [&](const unsigned char(&slots)[32][kSlotBytes]) {
        if (!valid) return;
        if (!(mask & (1u << src)))
            throw KernelFault("shuffle reads lane " + std::to_string(src) + ", outside the mask");
        std::memcpy(&out, slots[src], sizeof(T));
    });
    return out;
}

inline uint32_t ballot(uint32_t mask, bool pred) {
    uint32_t out = 0;
    const unsigned char p = pred;
    warp_collective(mask, &p, 1, [&](const unsigned char(&slots)[32][kSlotBytes]) {
        for (int l = 0; l < 32; l++)
            if ((mask >> l & 1u) && slots[l][0]) out |= 1u << l;
    });
    return out;
}

template <typename T, typename Op> T warp_reduce(uint32_t mask, T v, Op op) {
    T out{};
    bool first = true;
    warp_collective(mask, &v, sizeof(T), [&](const unsigned char(&slots)[32][kSlotBytes]) {
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

inline void __syncthreads() { ::pmoe_host::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    ::pmoe_host::warp_collective(mask, nullptr, 0, [](const unsigned char(&)[32][::pmoe_host::kSlotBytes]) {});
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const int lane = ::pmoe_host::self().lane, base = lane & ~(width - 1);
    return ::pmoe_host::shuffle_from(mask, v, base + (src & (width - 1)), true);
}
template <typename T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = ::pmoe_host::self().lane;
    const bool valid = (lane & (width - 1)) >= int(delta);
    return ::pmoe_host::shuffle_from(mask, v, lane - int(delta), valid);
}
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = ::pmoe_host::self().lane;
    const bool valid = (lane & (width - 1)) + int(delta) < width;
    return ::pmoe_host::shuffle_from(mask, v, lane + int(delta), valid);
}
template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int lane = ::pmoe_host::self().lane, src = lane ^ lane_mask;
    const bool valid = (src & ~(width - 1)) == (lane & ~(width - 1));
    return ::pmoe_host::shuffle_from(mask, v, src, valid);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::pmoe_host::ballot(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return ::pmoe_host::ballot(mask, pred != 0) != 0; }
inline int __all_sync(unsigned mask, int pred) { return ::pmoe_host::ballot(mask, pred != 0) == mask; }
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
    return ::pmoe_host::warp_reduce(mask, v, [](unsigned a, unsigned b) { return a + b; });
}
inline int __reduce_add_sync(unsigned mask, int v) {
    return int(__reduce_add_sync(mask, unsigned(v)));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) {
    return ::pmoe_host::warp_reduce(mask, v, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int __reduce_max_sync(unsigned mask, int v) {
    return ::pmoe_host::warp_reduce(mask, v, [](int a, int b) { return a > b ? a : b; });
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
    return ::pmoe_host::warp_reduce(mask, v, [](unsigned a, unsigned b) { return a < b ? a : b; });
}
inline int __reduce_min_sync(unsigned mask, int v) {
    return ::pmoe_host::warp_reduce(mask, v, [](int a, int b) { return a < b ? a : b; });
}

template <typename T> unsigned __match_any_sync(unsigned mask, T v) {
    static_assert(std::is_integral<T>::value, "__match_any_sync takes an integer");
    unsigned out = 0;
    ::pmoe_host::warp_collective(mask, &v, sizeof(T), [&](const unsigned char(&slots)[32][::pmoe_host::kSlotBytes]) {
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
