// Shared plumbing of the CUDA kernels: the build mode (nvcc, or the host-execution harness with
// PMOE_HOST_EXEC), launches, device buffers, checks of device-array contents, and the warp and
// block reduce/scan primitives that every kernel uses (CUB does not compile in the harness).
//
// Entry points, argument checks and error reporting are common/ (api.cpp, checks.cpp, errors.cpp,
// compiled into this library too), so both backends word their messages identically.
#pragma once

#ifdef PMOE_HOST_EXEC
#include "hostexec/cuda_host.hpp"
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define PMOE_DYNAMIC_SHARED(type, name)                                                        \
    extern __shared__ __align__(16) unsigned char pmoe_dynamic_shared_[];                      \
    type *name = reinterpret_cast<type *>(pmoe_dynamic_shared_)
#endif

#include <cstdint>
#include <cstring>
#include <utility>

#include "../common/checks.hpp"
#include "../common/impl.hpp"

namespace pmoe {
namespace cuda {

constexpr unsigned kFullMask = 0xffffffffu;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

#ifndef PMOE_HOST_EXEC
// The debug mode (PMOE_CUDA_CHECK_INPUTS=1): contents checks of the entry points, and a stream
// synchronisation after each launch so that a fault while the kernel runs names it.
bool debug_mode();
#endif

// kernel<<<grid, block, smem, stream>>>(args...), or its run through the harness. An error that
// an earlier runtime call left behind (cudaGetLastError keeps the last one of the thread until
// read) is not this launch's: it is read and dropped first, so that the check after the launch
// reports this launch's own configuration error, naming the kernel. A sticky error, which no
// read clears (an earlier kernel faulted; the context is lost), is reported as such instead of
// as this kernel's failure. Faults while a kernel runs surface at the next synchronisation, and
// name the kernel only in the debug mode.
template <typename... P, typename... A>
int launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
           void *stream, A &&...args) {
#ifdef PMOE_HOST_EXEC
    (void)stream;
    if (!pmoe_host::launch(name, kernel, grid, block, smem, std::forward<A>(args)...))
        return fail(PMOE_ERR_RUNTIME, "%s", pmoe_host::last_error().c_str());
    return PMOE_OK;
#else
    if (cudaGetLastError() != cudaSuccess) {
        const cudaError_t sticky = cudaPeekAtLastError();
        if (sticky != cudaSuccess)
            return fail(PMOE_ERR_RUNTIME,
                        "%s: not launched: the device failed before it (%s: %s); run with "
                        "PMOE_CUDA_CHECK_INPUTS=1 to name the kernel that did",
                        name, cudaGetErrorName(sticky), cudaGetErrorString(sticky));
    }
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(smem));
        if (e != cudaSuccess)
            return fail(PMOE_ERR_RUNTIME, "%s: %zu bytes of shared memory: %s", name, smem,
                        cudaGetErrorString(e));
    }
    kernel<<<grid, block, smem, static_cast<cudaStream_t>(stream)>>>(std::forward<A>(args)...);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && debug_mode()) e = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    return e == cudaSuccess
               ? PMOE_OK
               : fail(PMOE_ERR_RUNTIME, "%s: launch failed: %s", name, cudaGetErrorString(e));
#endif
}

// Blocks for a grid-stride loop over n items (>= 1; the device wants no empty grid).
inline unsigned grid_for(int64_t n, int threads) {
    const int64_t blocks = ceil_div(n, threads);
    return unsigned(blocks < 1 ? 1 : blocks > 65535 * 16 ? 65535 * 16 : blocks);
}

int memset_async(void *p, int byte, size_t bytes, void *stream);
// Multiprocessors of the current device (the harness: a small fixed number).
int multiprocessors();

// Temporary device memory, stream-ordered on the device.
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    ~DeviceBuffer();
    int allocate(size_t bytes, void *stream, const char *what);
    template <typename T> T *as() const { return static_cast<T *>(ptr_); }

  private:
    void *ptr_ = nullptr;
    void *stream_ = nullptr;
};

// Element i of a device array, read back to the host (for error messages).
template <typename T> T read_element(const T *p, int64_t i) {
    T v{};
#ifdef PMOE_HOST_EXEC
    v = p[i];
#else
    cudaMemcpy(&v, p + i, sizeof(T), cudaMemcpyDeviceToHost);
#endif
    return v;
}

// Checks of device-array contents (ids in range, finite values, ...). A kernel that meets a bad
// element records its flat index with atomicMin in one of kSlots slots (one per checked
// argument; the order of discovery does not matter, the first offender is the minimum), and
// skips it without touching memory it does not own. After the kernels, the entry point reads
// the slots back and words the error as the CPU library does.
// The harness runs synchronously, so it always checks. On a GPU, reading the slots back means
// waiting for the stream, so the CUDA library checks only with PMOE_CUDA_CHECK_INPUTS=1; without
// it, valid contents are the caller's job (the kernels stay memory-safe either way).
class InputChecks {
  public:
    static constexpr int kSlots = 6;
    static constexpr unsigned long long kNone = ~0ull;
    InputChecks() {
        for (auto &slot : host_) slot = kNone;
    }
    InputChecks(const InputChecks &) = delete;
    InputChecks &operator=(const InputChecks &) = delete;
    // Resets the slots; device() is nullptr when checks are off.
    int begin(void *stream);
    unsigned long long *device() const { return device_; }
    // Waits for the kernels and reads the slots; first_bad(i) is -1 where all was well.
    int finish(void *stream);
    int64_t first_bad(int slot) const {
        return host_[slot] == kNone ? -1 : int64_t(host_[slot]);
    }

  private:
    unsigned long long host_[kSlots];
    unsigned long long *device_ = nullptr;
    DeviceBuffer buffer_;
};

__device__ inline void record_bad(unsigned long long *checks, int slot, int64_t index) {
    if (checks) atomicMin(checks + slot, (unsigned long long)index);
}

// "name[i] = v is out of range [lo, hi)" as the CPU words it, if slot `slot` caught one.
int ids_error(const InputChecks &checks, int slot, const char *name, const int32_t *ids,
              int64_t lo, int64_t hi);
// "name[r, c] = v is not finite (row_name r, col_name c)" as the CPU words it.
int finite_error(const InputChecks &checks, int slot, const char *name, const float *x,
                 int64_t cols, const char *row_name, const char *col_name);

// ---- bf16 ----

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// body(T()) with T the storage type of a checked PMOE_DTYPE_* (float or __nv_bfloat16).
template <typename F> int with_device_dtype(int32_t dtype, F &&body) {
    return dtype == PMOE_DTYPE_F32 ? body(float()) : body(__nv_bfloat16());
}

// ---- warp and block primitives (deterministic: a fixed combination order) ----

struct Sum {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const {
        return a > b ? a : b;
    }
};
struct Min {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const {
        return a < b ? a : b;
    }
};

// Butterfly reduction: every lane ends with the same value, combined in the same order.
template <typename T, typename Op> __device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(kFullMask, v, offset));
    return v;
}

// Inclusive prefix sum over the lanes of a warp.
template <typename T> __device__ __forceinline__ T warp_inclusive_scan(T v) {
    const int lane = threadIdx.x & 31;
    for (int offset = 1; offset < 32; offset <<= 1) {
        const T up = __shfl_up_sync(kFullMask, v, offset);
        if (lane >= offset) v += up;
    }
    return v;
}

// Reduction over a 1-D block whose size is a multiple of 32; every thread gets the result.
// `scratch` holds 32 values; the block must not use it again before a __syncthreads.
template <typename T, typename Op> __device__ T block_reduce(T v, Op op, T *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_reduce(v, op);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T total = scratch[0];
    for (int w = 1; w < warps; w++) total = op(total, scratch[w]);
    __syncthreads();
    return total;
}

// Exclusive prefix sum over a 1-D block (size a multiple of 32); *total gets the block's sum.
// `scratch` holds 32 values, as for block_reduce.
template <typename T> __device__ T block_exclusive_scan(T v, T *scratch, T *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const T inclusive = warp_inclusive_scan(v);
    if (lane == 31) scratch[warp] = inclusive;
    __syncthreads();
    T before = 0, sum = 0;
    for (int w = 0; w < warps; w++) {
        if (w < warp) before += scratch[w];
        sum += scratch[w];
    }
    __syncthreads();
    *total = sum;
    return before + inclusive - v;
}

} // namespace cuda
} // namespace pmoe

// The CUDA library's implementations of panamoe.h (impl.hpp) are written with its names.
namespace pmoe_impl {
using namespace pmoe;
using namespace pmoe::cuda;
} // namespace pmoe_impl
