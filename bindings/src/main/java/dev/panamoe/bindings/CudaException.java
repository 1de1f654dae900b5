package dev.panamoe.bindings;

/**
 * A CUDA runtime call returned an error: the message is "call: cudaGetErrorString text
 * (cudaGetErrorName = code)", e.g. "cudaMalloc(1024 bytes): out of memory
 * (cudaErrorMemoryAllocation = 2)".
 */
public final class CudaException extends RuntimeException {
    private final int error;
    private final String call;

    public CudaException(int error, String call, String message) {
        super(message);
        this.error = error;
        this.call = call;
    }

    /** The cudaError_t value. */
    public int error() {
        return error;
    }

    /** The call that failed, with its arguments where they help (e.g. "cudaSetDevice(3)"). */
    public String call() {
        return call;
    }

    /** cudaErrorMemoryAllocation: a caching allocator frees its cache and retries. */
    public boolean isOutOfMemory() {
        return error == cudart_h.cudaErrorMemoryAllocation;
    }
}
