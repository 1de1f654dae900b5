package dev.panamoe.ops;

/**
 * The device code paths of the backends (caching allocator, device segments, copies for host
 * access and index checks, tables and scalar results in device memory) with the CPU kernels:
 * results must be bitwise those of the CPU backend.
 */
class EmulatedCudaBackendParityTest extends BackendParityTest {
    private final EmulatedCudaBackend backend = new EmulatedCudaBackend(1L << 28);

    @Override
    Backend backend() {
        return backend;
    }

    @Override
    double tolerance() {
        return 0;
    }
}
