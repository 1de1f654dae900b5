// Library-level parts of the CUDA implementation of panamoe.h, and the plumbing declared in
// common.cuh: device buffers and input checks (the entry points and their argument checks are
// common/api.cpp, error reporting common/errors.cpp, shared with the CPU library).
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.cuh"

namespace pmoe {

// The device decides its own parallelism; the value is kept so that the call round-trips.
int num_threads() {
    const int n = requested_threads();
    return n > 0 ? n : 1;
}

namespace cuda {

#ifdef PMOE_HOST_EXEC

int memset_async(void *p, int byte, size_t bytes, void *) {
    if (bytes) std::memset(p, byte, bytes);
    return PMOE_OK;
}

int multiprocessors() { return 4; }

DeviceBuffer::~DeviceBuffer() { std::free(ptr_); }

int DeviceBuffer::allocate(size_t bytes, void *stream, const char *what) {
    ptr_ = std::malloc(bytes ? bytes : 1);
    stream_ = stream;
    return ptr_ ? PMOE_OK
                : fail(PMOE_ERR_RUNTIME, "out of memory for %s (%zu bytes)", what, bytes);
}

int InputChecks::begin(void *) {
    device_ = host_;
    return PMOE_OK;
}

int InputChecks::finish(void *) { return PMOE_OK; }

#else

namespace {
int cuda_status(cudaError_t e, const char *what) {
    return e == cudaSuccess ? PMOE_OK
                            : fail(PMOE_ERR_RUNTIME, "%s: %s", what, cudaGetErrorString(e));
}

} // namespace

bool debug_mode() {
    static const bool on = [] {
        const char *v = std::getenv("PMOE_CUDA_CHECK_INPUTS");
        return v && *v && std::strcmp(v, "0") != 0;
    }();
    return on;
}

int memset_async(void *p, int byte, size_t bytes, void *stream) {
    if (!bytes) return PMOE_OK;
    return cuda_status(cudaMemsetAsync(p, byte, bytes, static_cast<cudaStream_t>(stream)),
                       "cudaMemsetAsync");
}

int multiprocessors() {
    int device = 0, count = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
        return 1;
    return count;
}

DeviceBuffer::~DeviceBuffer() {
    if (ptr_) cudaFreeAsync(ptr_, static_cast<cudaStream_t>(stream_));
}

int DeviceBuffer::allocate(size_t bytes, void *stream, const char *what) {
    stream_ = stream;
    const cudaError_t e = cudaMallocAsync(&ptr_, bytes ? bytes : 1, static_cast<cudaStream_t>(stream));
    if (e == cudaSuccess) return PMOE_OK;
    ptr_ = nullptr;
    return fail(PMOE_ERR_RUNTIME, "cudaMallocAsync of %zu bytes for %s: %s", bytes, what,
                cudaGetErrorString(e));
}

int InputChecks::begin(void *stream) {
    if (!debug_mode()) return PMOE_OK;
    PMOE_CHECK(buffer_.allocate(sizeof host_, stream, "input checks"));
    device_ = buffer_.as<unsigned long long>();
    return memset_async(device_, 0xff, sizeof host_, stream);
}

int InputChecks::finish(void *stream) {
    if (!device_) return PMOE_OK;
    auto s = static_cast<cudaStream_t>(stream);
    PMOE_CHECK(cuda_status(cudaMemcpyAsync(host_, device_, sizeof host_, cudaMemcpyDeviceToHost, s),
                           "reading the input checks"));
    return cuda_status(cudaStreamSynchronize(s), "kernels of this call");
}

#endif

int ids_error(const InputChecks &checks, int slot, const char *name, const int32_t *ids,
              int64_t lo, int64_t hi) {
    const int64_t i = checks.first_bad(slot);
    if (i < 0) return PMOE_OK;
    return fail_out_of_range(name, i, read_element(ids, i), lo, hi);
}

int finite_error(const InputChecks &checks, int slot, const char *name, const float *x,
                 int64_t cols, const char *row_name, const char *col_name) {
    const int64_t i = checks.first_bad(slot);
    if (i < 0) return PMOE_OK;
    return fail_not_finite(name, i / cols, i % cols, read_element(x, i), row_name, col_name);
}

namespace {

constexpr int kThreads = 256;

// first = min index of a non-finite element, through the record of an InputChecks slot.
template <typename T>
__global__ void find_nonfinite_kernel(int64_t n, const T *x, unsigned long long *checks) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        if (!isfinite(to_float(x[i]))) {
            record_bad(checks, 0, i);
            return; // later elements of this thread cannot be smaller
        }
}

__global__ void store_first_index_kernel(const unsigned long long *checks, int64_t *first_index) {
    *first_index = checks[0] == InputChecks::kNone ? -1 : int64_t(checks[0]);
}

} // namespace
} // namespace cuda
} // namespace pmoe

using namespace pmoe;
using namespace pmoe::cuda;

extern "C" {

PMOE_API const char *pmoe_backend_name(void) { return "cuda"; }

// The CUDA library has no CPU kernels to choose an instruction set for (panamoe.h).
PMOE_API int pmoe_cpu_isa(int32_t *level_in_use, uint32_t *features_found) {
    clear_error();
    return fail(PMOE_ERR_UNSUPPORTED, "pmoe_cpu_isa: the CUDA library has no CPU kernels");
}

PMOE_API int pmoe_set_cpu_isa(int32_t level) {
    clear_error();
    return fail(PMOE_ERR_UNSUPPORTED, "pmoe_set_cpu_isa: the CUDA library has no CPU kernels");
}

} // extern "C"

namespace pmoe_impl {

// first_index is device memory, like x; the scan always runs (it is the check itself), so it
// uses a device-side record of its own rather than InputChecks.
int find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index, void *stream) {
    return guarded("pmoe_find_nonfinite", [&] {
        DeviceBuffer record;
        PMOE_CHECK(record.allocate(sizeof(unsigned long long), stream, "the scan record"));
        PMOE_CHECK(memset_async(record.as<void>(), 0xff, sizeof(unsigned long long), stream));
        if (n > 0)
            PMOE_CHECK(with_device_dtype(dtype, [&](auto t) {
                using T = decltype(t);
                return launch("find_nonfinite", find_nonfinite_kernel<T>, grid_for(n, kThreads),
                              kThreads, 0, stream, n, static_cast<const T *>(x),
                              record.as<unsigned long long>());
            }));
        return launch("store_first_index", store_first_index_kernel, 1, 1, 0, stream,
                      record.as<const unsigned long long>(), first_index);
    });
}

} // namespace pmoe_impl
