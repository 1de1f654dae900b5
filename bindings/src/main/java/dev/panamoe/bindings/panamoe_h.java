package dev.panamoe.bindings;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The binding of native-src/include/panamoe.h, written by hand in the shape jextract generates
 * (a holder class with the FunctionDescriptor per function, {@code foo$descriptor()},
 * {@code foo$handle()}, {@code foo$address()} and a typed wrapper {@code foo(...)}), so it can
 * be diffed against jextract's output. HeaderBindingTest checks it against the header.
 *
 * <p>Unlike jextract's output it is instantiable: the header has several implementations
 * (libpanamoe_cpu.so, libpanamoe_cuda.so, host-harness builds), and each instance binds one.
 * Symbols are looked up on first use, so a library that implements only part of the header
 * (the CUDA library while its kernels are being written) loads fine and reports the missing
 * functions as {@link UnsupportedOperationException}.
 *
 * <p>Every pointer, the stream included, is a {@link MemorySegment}; pass
 * {@link MemorySegment#NULL} for the stream on the CPU. Functions return the raw status: pass it
 * to {@link NativeStatus#check} to turn a failure into an exception.
 */
@SuppressWarnings("restricted") // binding native code is what this class is for
public final class panamoe_h {
    public static final ValueLayout.OfInt C_INT = ValueLayout.JAVA_INT;
    public static final ValueLayout.OfLong C_LONG = ValueLayout.JAVA_LONG;
    public static final ValueLayout.OfFloat C_FLOAT = ValueLayout.JAVA_FLOAT;
    /** Pointers may be read without reinterpret() (e.g. getString on pmoe_last_error()), as in jextract. */
    public static final AddressLayout C_POINTER =
            ValueLayout.ADDRESS.withTargetLayout(MemoryLayout.sequenceLayout(Long.MAX_VALUE, JAVA_BYTE));

    private static volatile panamoe_h cpu;

    private final NativeLibraries.Loaded library;

    private panamoe_h(NativeLibraries.Loaded library) {
        this.library = library;
    }

    /** Binds the header to one implementation. */
    public static panamoe_h open(NativeLibraries.Loaded library) {
        return new panamoe_h(library);
    }

    /**
     * The CPU implementation, loaded on first use; throws NativeLibraryUnavailableException if it
     * cannot be. Applies the system property {@value CpuIsa#PROPERTY} at load, and fails (as the
     * kernels' level could not be the one asked for) if it or PMOE_CPU_ISA names a level the CPU
     * lacks.
     */
    public static panamoe_h cpu() {
        panamoe_h h = cpu;
        if (h == null) {
            synchronized (panamoe_h.class) {
                if (cpu == null) {
                    panamoe_h opened = open(NativeLibraries.panamoeCpu());
                    CpuIsa.applyProperty(opened);
                    cpu = opened;
                }
                h = cpu;
            }
        }
        return h;
    }

    public NativeLibraries.Loaded library() {
        return library;
    }

    @Override
    public String toString() {
        return "panamoe_h[" + library.name() + " from " + library.path() + "]";
    }

    /** One function of this instance's library: address and downcall handle, looked up on first use. */
    private final class Downcall {
        private final String name;
        private final FunctionDescriptor descriptor;
        private final Linker.Option[] options;
        // Racy lazy initialisation is benign: both values are immutable and recomputing gives an equivalent one.
        private volatile MemorySegment address;
        private volatile MethodHandle handle;

        Downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
            this.name = name;
            this.descriptor = descriptor;
            this.options = options;
        }

        MemorySegment address() {
            MemorySegment a = address;
            if (a == null) {
                a = library.lookup().find(name).orElseThrow(() -> new UnsupportedOperationException(
                        name + " is not implemented by " + library.name() + " (" + library.path() + ")"));
                address = a;
            }
            return a;
        }

        MethodHandle handle() {
            MethodHandle h = handle;
            if (h == null) {
                h = Linker.nativeLinker().downcallHandle(address(), descriptor, options);
                handle = h;
            }
            return h;
        }
    }

    // ---- constant macros ----

    public static int PMOE_OK() {
        return 0;
    }

    public static int PMOE_ERR_INVALID_ARGUMENT() {
        return 1;
    }

    public static int PMOE_ERR_UNSUPPORTED() {
        return 2;
    }

    public static int PMOE_ERR_NON_FINITE() {
        return 3;
    }

    public static int PMOE_ERR_RUNTIME() {
        return 4;
    }

    public static int PMOE_DTYPE_F32() {
        return 0;
    }

    public static int PMOE_DTYPE_BF16() {
        return 1;
    }

    public static int PMOE_SCORE_SOFTMAX() {
        return 0;
    }

    public static int PMOE_SCORE_SIGMOID() {
        return 1;
    }

    public static int PMOE_ACT_GELU() {
        return 0;
    }

    public static int PMOE_ACT_SILU() {
        return 1;
    }

    public static int PMOE_ACT_SWIGLU() {
        return 2;
    }

    public static int PMOE_DROP_BY_POSITION() {
        return 0;
    }

    public static int PMOE_DROP_BY_PROBABILITY() {
        return 1;
    }

    public static int PMOE_CAPACITY_DROPLESS() {
        return -1;
    }

    public static int PMOE_ISA_AVX2() {
        return 1;
    }

    public static int PMOE_ISA_AVX512() {
        return 2;
    }

    public static int PMOE_ISA_AVX512_BF16() {
        return 3;
    }

    public static int PMOE_CPU_AVX2_FMA() {
        return 1;
    }

    public static int PMOE_CPU_AVX512() {
        return 2;
    }

    public static int PMOE_CPU_AVX512_BF16() {
        return 4;
    }

    // ---- functions ----

    private static final class pmoe_last_error {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER);
    }

    private final Downcall pmoe_last_error$downcall = new Downcall("pmoe_last_error", pmoe_last_error.DESC);

    public static FunctionDescriptor pmoe_last_error$descriptor() {
        return pmoe_last_error.DESC;
    }

    public MethodHandle pmoe_last_error$handle() {
        return pmoe_last_error$downcall.handle();
    }

    public MemorySegment pmoe_last_error$address() {
        return pmoe_last_error$downcall.address();
    }

    /** {@code const char *pmoe_last_error(void)} */
    public MemorySegment pmoe_last_error() {
        try {
            return (MemorySegment) pmoe_last_error$handle().invokeExact();
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_version {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_version$downcall = new Downcall("pmoe_version", pmoe_version.DESC);

    public static FunctionDescriptor pmoe_version$descriptor() {
        return pmoe_version.DESC;
    }

    public MethodHandle pmoe_version$handle() {
        return pmoe_version$downcall.handle();
    }

    public MemorySegment pmoe_version$address() {
        return pmoe_version$downcall.address();
    }

    /** {@code int pmoe_version(int32_t *major, int32_t *minor, int32_t *patch)} */
    public int pmoe_version(MemorySegment major, MemorySegment minor, MemorySegment patch) {
        try {
            return (int) pmoe_version$handle().invokeExact(major, minor, patch);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_backend_name {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_POINTER);
    }

    private final Downcall pmoe_backend_name$downcall = new Downcall("pmoe_backend_name", pmoe_backend_name.DESC);

    public static FunctionDescriptor pmoe_backend_name$descriptor() {
        return pmoe_backend_name.DESC;
    }

    public MethodHandle pmoe_backend_name$handle() {
        return pmoe_backend_name$downcall.handle();
    }

    public MemorySegment pmoe_backend_name$address() {
        return pmoe_backend_name$downcall.address();
    }

    /** {@code const char *pmoe_backend_name(void)} */
    public MemorySegment pmoe_backend_name() {
        try {
            return (MemorySegment) pmoe_backend_name$handle().invokeExact();
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_noop {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT);
    }

    private final Downcall pmoe_noop$downcall = new Downcall("pmoe_noop", pmoe_noop.DESC);

    public static FunctionDescriptor pmoe_noop$descriptor() {
        return pmoe_noop.DESC;
    }

    public MethodHandle pmoe_noop$handle() {
        return pmoe_noop$downcall.handle();
    }

    public MemorySegment pmoe_noop$address() {
        return pmoe_noop$downcall.address();
    }

    /** {@code int pmoe_noop(void)} */
    public int pmoe_noop() {
        try {
            return (int) pmoe_noop$handle().invokeExact();
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_set_num_threads {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_INT);
    }

    private final Downcall pmoe_set_num_threads$downcall = new Downcall("pmoe_set_num_threads", pmoe_set_num_threads.DESC);

    public static FunctionDescriptor pmoe_set_num_threads$descriptor() {
        return pmoe_set_num_threads.DESC;
    }

    public MethodHandle pmoe_set_num_threads$handle() {
        return pmoe_set_num_threads$downcall.handle();
    }

    public MemorySegment pmoe_set_num_threads$address() {
        return pmoe_set_num_threads$downcall.address();
    }

    /** {@code int pmoe_set_num_threads(int32_t n)} */
    public int pmoe_set_num_threads(int n) {
        try {
            return (int) pmoe_set_num_threads$handle().invokeExact(n);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_get_num_threads {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    }

    private final Downcall pmoe_get_num_threads$downcall = new Downcall("pmoe_get_num_threads", pmoe_get_num_threads.DESC);

    public static FunctionDescriptor pmoe_get_num_threads$descriptor() {
        return pmoe_get_num_threads.DESC;
    }

    public MethodHandle pmoe_get_num_threads$handle() {
        return pmoe_get_num_threads$downcall.handle();
    }

    public MemorySegment pmoe_get_num_threads$address() {
        return pmoe_get_num_threads$downcall.address();
    }

    /** {@code int pmoe_get_num_threads(int32_t *n)} */
    public int pmoe_get_num_threads(MemorySegment n) {
        try {
            return (int) pmoe_get_num_threads$handle().invokeExact(n);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_cpu_isa {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_cpu_isa$downcall = new Downcall("pmoe_cpu_isa", pmoe_cpu_isa.DESC);

    public static FunctionDescriptor pmoe_cpu_isa$descriptor() {
        return pmoe_cpu_isa.DESC;
    }

    public MethodHandle pmoe_cpu_isa$handle() {
        return pmoe_cpu_isa$downcall.handle();
    }

    public MemorySegment pmoe_cpu_isa$address() {
        return pmoe_cpu_isa$downcall.address();
    }

    /** {@code int pmoe_cpu_isa(int32_t *level_in_use, uint32_t *features_found)} */
    public int pmoe_cpu_isa(MemorySegment level_in_use, MemorySegment features_found) {
        try {
            return (int) pmoe_cpu_isa$handle().invokeExact(level_in_use, features_found);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_set_cpu_isa {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT);
    }

    private final Downcall pmoe_set_cpu_isa$downcall = new Downcall("pmoe_set_cpu_isa", pmoe_set_cpu_isa.DESC);

    public static FunctionDescriptor pmoe_set_cpu_isa$descriptor() {
        return pmoe_set_cpu_isa.DESC;
    }

    public MethodHandle pmoe_set_cpu_isa$handle() {
        return pmoe_set_cpu_isa$downcall.handle();
    }

    public MemorySegment pmoe_set_cpu_isa$address() {
        return pmoe_set_cpu_isa$downcall.address();
    }

    /** {@code int pmoe_set_cpu_isa(int32_t level)} */
    public int pmoe_set_cpu_isa(int level) {
        try {
            return (int) pmoe_set_cpu_isa$handle().invokeExact(level);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_find_nonfinite {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_LONG, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_find_nonfinite$downcall = new Downcall("pmoe_find_nonfinite", pmoe_find_nonfinite.DESC);

    public static FunctionDescriptor pmoe_find_nonfinite$descriptor() {
        return pmoe_find_nonfinite.DESC;
    }

    public MethodHandle pmoe_find_nonfinite$handle() {
        return pmoe_find_nonfinite$downcall.handle();
    }

    public MemorySegment pmoe_find_nonfinite$address() {
        return pmoe_find_nonfinite$downcall.address();
    }

    /** {@code int pmoe_find_nonfinite(int32_t dtype, int64_t n, const void *x, int64_t *first_index, void *stream)} */
    public int pmoe_find_nonfinite(int dtype, long n, MemorySegment x, MemorySegment first_index,
            MemorySegment stream) {
        try {
            return (int) pmoe_find_nonfinite$handle().invokeExact(dtype, n, x, first_index, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_gemm {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_FLOAT, C_POINTER, C_INT, C_POINTER, C_INT,
                C_FLOAT, C_POINTER, C_INT, C_POINTER);
    }

    private final Downcall pmoe_gemm$downcall = new Downcall("pmoe_gemm", pmoe_gemm.DESC);

    public static FunctionDescriptor pmoe_gemm$descriptor() {
        return pmoe_gemm.DESC;
    }

    public MethodHandle pmoe_gemm$handle() {
        return pmoe_gemm$downcall.handle();
    }

    public MemorySegment pmoe_gemm$address() {
        return pmoe_gemm$downcall.address();
    }

    /** {@code int pmoe_gemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha, const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c, int32_t ldc, void *stream)} */
    public int pmoe_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, MemorySegment a, int lda,
            MemorySegment b, int ldb, float beta, MemorySegment c, int ldc, MemorySegment stream) {
        try {
            return (int) pmoe_gemm$handle().invokeExact(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_gemm_bf16 {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_FLOAT, C_POINTER, C_INT, C_POINTER, C_INT,
                C_FLOAT, C_INT, C_POINTER, C_INT, C_POINTER);
    }

    private final Downcall pmoe_gemm_bf16$downcall = new Downcall("pmoe_gemm_bf16", pmoe_gemm_bf16.DESC);

    public static FunctionDescriptor pmoe_gemm_bf16$descriptor() {
        return pmoe_gemm_bf16.DESC;
    }

    public MethodHandle pmoe_gemm_bf16$handle() {
        return pmoe_gemm_bf16$downcall.handle();
    }

    public MemorySegment pmoe_gemm_bf16$address() {
        return pmoe_gemm_bf16$downcall.address();
    }

    /** {@code int pmoe_gemm_bf16(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha, const void *a, int32_t lda, const void *b, int32_t ldb, float beta, int32_t c_dtype, void *c, int32_t ldc, void *stream)} */
    public int pmoe_gemm_bf16(int trans_a, int trans_b, int m, int n, int k, float alpha, MemorySegment a, int lda,
            MemorySegment b, int ldb, float beta, int c_dtype, MemorySegment c, int ldc, MemorySegment stream) {
        try {
            return (int) pmoe_gemm_bf16$handle().invokeExact(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c_dtype, c, ldc, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_grouped_gemm_nn {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_grouped_gemm_nn$downcall = new Downcall("pmoe_grouped_gemm_nn", pmoe_grouped_gemm_nn.DESC);

    public static FunctionDescriptor pmoe_grouped_gemm_nn$descriptor() {
        return pmoe_grouped_gemm_nn.DESC;
    }

    public MethodHandle pmoe_grouped_gemm_nn$handle() {
        return pmoe_grouped_gemm_nn$downcall.handle();
    }

    public MemorySegment pmoe_grouped_gemm_nn$address() {
        return pmoe_grouped_gemm_nn$downcall.address();
    }

    /** {@code int pmoe_grouped_gemm_nn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a, const float *const *weights, float *c, void *stream)} */
    public int pmoe_grouped_gemm_nn(int groups, MemorySegment offsets, int k, int n, MemorySegment a,
            MemorySegment weights, MemorySegment c, MemorySegment stream) {
        try {
            return (int) pmoe_grouped_gemm_nn$handle().invokeExact(groups, offsets, k, n, a, weights, c, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_grouped_gemm_nt {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_grouped_gemm_nt$downcall = new Downcall("pmoe_grouped_gemm_nt", pmoe_grouped_gemm_nt.DESC);

    public static FunctionDescriptor pmoe_grouped_gemm_nt$descriptor() {
        return pmoe_grouped_gemm_nt.DESC;
    }

    public MethodHandle pmoe_grouped_gemm_nt$handle() {
        return pmoe_grouped_gemm_nt$downcall.handle();
    }

    public MemorySegment pmoe_grouped_gemm_nt$address() {
        return pmoe_grouped_gemm_nt$downcall.address();
    }

    /** {@code int pmoe_grouped_gemm_nt(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a, const float *const *weights, float *c, void *stream)} */
    public int pmoe_grouped_gemm_nt(int groups, MemorySegment offsets, int k, int n, MemorySegment a,
            MemorySegment weights, MemorySegment c, MemorySegment stream) {
        try {
            return (int) pmoe_grouped_gemm_nt$handle().invokeExact(groups, offsets, k, n, a, weights, c, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_grouped_gemm_tn {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_FLOAT, C_POINTER,
                C_POINTER);
    }

    private final Downcall pmoe_grouped_gemm_tn$downcall = new Downcall("pmoe_grouped_gemm_tn", pmoe_grouped_gemm_tn.DESC);

    public static FunctionDescriptor pmoe_grouped_gemm_tn$descriptor() {
        return pmoe_grouped_gemm_tn.DESC;
    }

    public MethodHandle pmoe_grouped_gemm_tn$handle() {
        return pmoe_grouped_gemm_tn$downcall.handle();
    }

    public MemorySegment pmoe_grouped_gemm_tn$address() {
        return pmoe_grouped_gemm_tn$downcall.address();
    }

    /** {@code int pmoe_grouped_gemm_tn(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const float *a, const float *b, float beta, float *const *out, void *stream)} */
    public int pmoe_grouped_gemm_tn(int groups, MemorySegment offsets, int k, int n, MemorySegment a,
            MemorySegment b, float beta, MemorySegment out, MemorySegment stream) {
        try {
            return (int) pmoe_grouped_gemm_tn$handle().invokeExact(groups, offsets, k, n, a, b, beta, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_grouped_gemm_nn_bf16 {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_grouped_gemm_nn_bf16$downcall = new Downcall("pmoe_grouped_gemm_nn_bf16",
            pmoe_grouped_gemm_nn_bf16.DESC);

    public static FunctionDescriptor pmoe_grouped_gemm_nn_bf16$descriptor() {
        return pmoe_grouped_gemm_nn_bf16.DESC;
    }

    public MethodHandle pmoe_grouped_gemm_nn_bf16$handle() {
        return pmoe_grouped_gemm_nn_bf16$downcall.handle();
    }

    public MemorySegment pmoe_grouped_gemm_nn_bf16$address() {
        return pmoe_grouped_gemm_nn_bf16$downcall.address();
    }

    /** {@code int pmoe_grouped_gemm_nn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const void *a, const void *const *weights, void *c, void *stream)} */
    public int pmoe_grouped_gemm_nn_bf16(int groups, MemorySegment offsets, int k, int n, MemorySegment a,
            MemorySegment weights, MemorySegment c, MemorySegment stream) {
        try {
            return (int) pmoe_grouped_gemm_nn_bf16$handle().invokeExact(groups, offsets, k, n, a, weights, c, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_grouped_gemm_nt_bf16 {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_grouped_gemm_nt_bf16$downcall = new Downcall("pmoe_grouped_gemm_nt_bf16", pmoe_grouped_gemm_nt_bf16.DESC);

    public static FunctionDescriptor pmoe_grouped_gemm_nt_bf16$descriptor() {
        return pmoe_grouped_gemm_nt_bf16.DESC;
    }

    public MethodHandle pmoe_grouped_gemm_nt_bf16$handle() {
        return pmoe_grouped_gemm_nt_bf16$downcall.handle();
    }

    public MemorySegment pmoe_grouped_gemm_nt_bf16$address() {
        return pmoe_grouped_gemm_nt_bf16$downcall.address();
    }

    /** {@code int pmoe_grouped_gemm_nt_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const void *a, const void *const *weights, void *c, void *stream)} */
    public int pmoe_grouped_gemm_nt_bf16(int groups, MemorySegment offsets, int k, int n, MemorySegment a,
            MemorySegment weights, MemorySegment c, MemorySegment stream) {
        try {
            return (int) pmoe_grouped_gemm_nt_bf16$handle().invokeExact(groups, offsets, k, n, a, weights, c, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_grouped_gemm_tn_bf16 {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_FLOAT, C_INT, C_POINTER,
                C_POINTER);
    }

    private final Downcall pmoe_grouped_gemm_tn_bf16$downcall = new Downcall("pmoe_grouped_gemm_tn_bf16", pmoe_grouped_gemm_tn_bf16.DESC);

    public static FunctionDescriptor pmoe_grouped_gemm_tn_bf16$descriptor() {
        return pmoe_grouped_gemm_tn_bf16.DESC;
    }

    public MethodHandle pmoe_grouped_gemm_tn_bf16$handle() {
        return pmoe_grouped_gemm_tn_bf16$downcall.handle();
    }

    public MemorySegment pmoe_grouped_gemm_tn_bf16$address() {
        return pmoe_grouped_gemm_tn_bf16$downcall.address();
    }

    /** {@code int pmoe_grouped_gemm_tn_bf16(int32_t groups, const int32_t *offsets, int32_t k, int32_t n, const void *a, const void *b, float beta, int32_t out_dtype, void *const *out, void *stream)} */
    public int pmoe_grouped_gemm_tn_bf16(int groups, MemorySegment offsets, int k, int n, MemorySegment a,
            MemorySegment b, float beta, int out_dtype, MemorySegment out, MemorySegment stream) {
        try {
            return (int) pmoe_grouped_gemm_tn_bf16$handle().invokeExact(groups, offsets, k, n, a, b, beta, out_dtype, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_router_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_router_forward$downcall = new Downcall("pmoe_router_forward", pmoe_router_forward.DESC);

    public static FunctionDescriptor pmoe_router_forward$descriptor() {
        return pmoe_router_forward.DESC;
    }

    public MethodHandle pmoe_router_forward$handle() {
        return pmoe_router_forward$downcall.handle();
    }

    public MemorySegment pmoe_router_forward$address() {
        return pmoe_router_forward$downcall.address();
    }

    /** {@code int pmoe_router_forward(const pmoe_router_config *cfg, const float *logits, float *scores, float *topk_weights, int32_t *topk_ids, void *stream)} */
    public int pmoe_router_forward(MemorySegment cfg, MemorySegment logits, MemorySegment scores,
            MemorySegment topk_weights, MemorySegment topk_ids, MemorySegment stream) {
        try {
            return (int) pmoe_router_forward$handle().invokeExact(cfg, logits, scores, topk_weights, topk_ids, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_router_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_router_backward$downcall = new Downcall("pmoe_router_backward", pmoe_router_backward.DESC);

    public static FunctionDescriptor pmoe_router_backward$descriptor() {
        return pmoe_router_backward.DESC;
    }

    public MethodHandle pmoe_router_backward$handle() {
        return pmoe_router_backward$downcall.handle();
    }

    public MemorySegment pmoe_router_backward$address() {
        return pmoe_router_backward$downcall.address();
    }

    /** {@code int pmoe_router_backward(const pmoe_router_config *cfg, const float *scores, const int32_t *topk_ids, const float *grad_topk_weights, const float *grad_scores, float *grad_logits, void *stream)} */
    public int pmoe_router_backward(MemorySegment cfg, MemorySegment scores, MemorySegment topk_ids,
            MemorySegment grad_topk_weights, MemorySegment grad_scores, MemorySegment grad_logits,
            MemorySegment stream) {
        try {
            return (int) pmoe_router_backward$handle().invokeExact(cfg, scores, topk_ids, grad_topk_weights, grad_scores, grad_logits, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_aux_loss_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_FLOAT, C_POINTER, C_POINTER,
                C_POINTER);
    }

    private final Downcall pmoe_aux_loss_forward$downcall = new Downcall("pmoe_aux_loss_forward", pmoe_aux_loss_forward.DESC);

    public static FunctionDescriptor pmoe_aux_loss_forward$descriptor() {
        return pmoe_aux_loss_forward.DESC;
    }

    public MethodHandle pmoe_aux_loss_forward$handle() {
        return pmoe_aux_loss_forward$downcall.handle();
    }

    public MemorySegment pmoe_aux_loss_forward$address() {
        return pmoe_aux_loss_forward$downcall.address();
    }

    /** {@code int pmoe_aux_loss_forward(int32_t tokens, int32_t experts, int32_t top_k, const float *scores, const int32_t *topk_ids, float coeff, float *loss, int32_t *expert_counts, void *stream)} */
    public int pmoe_aux_loss_forward(int tokens, int experts, int top_k, MemorySegment scores,
            MemorySegment topk_ids, float coeff, MemorySegment loss, MemorySegment expert_counts,
            MemorySegment stream) {
        try {
            return (int) pmoe_aux_loss_forward$handle().invokeExact(tokens, experts, top_k, scores, topk_ids, coeff, loss, expert_counts, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_aux_loss_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_FLOAT, C_FLOAT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_aux_loss_backward$downcall = new Downcall("pmoe_aux_loss_backward", pmoe_aux_loss_backward.DESC);

    public static FunctionDescriptor pmoe_aux_loss_backward$descriptor() {
        return pmoe_aux_loss_backward.DESC;
    }

    public MethodHandle pmoe_aux_loss_backward$handle() {
        return pmoe_aux_loss_backward$downcall.handle();
    }

    public MemorySegment pmoe_aux_loss_backward$address() {
        return pmoe_aux_loss_backward$downcall.address();
    }

    /** {@code int pmoe_aux_loss_backward(int32_t tokens, int32_t experts, int32_t top_k, const int32_t *expert_counts, float coeff, float grad_loss, float *grad_scores, void *stream)} */
    public int pmoe_aux_loss_backward(int tokens, int experts, int top_k, MemorySegment expert_counts,
            float coeff, float grad_loss, MemorySegment grad_scores, MemorySegment stream) {
        try {
            return (int) pmoe_aux_loss_backward$handle().invokeExact(tokens, experts, top_k, expert_counts, coeff, grad_loss, grad_scores, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_z_loss_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_INT, C_INT, C_POINTER, C_FLOAT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_z_loss_forward$downcall = new Downcall("pmoe_z_loss_forward", pmoe_z_loss_forward.DESC);

    public static FunctionDescriptor pmoe_z_loss_forward$descriptor() {
        return pmoe_z_loss_forward.DESC;
    }

    public MethodHandle pmoe_z_loss_forward$handle() {
        return pmoe_z_loss_forward$downcall.handle();
    }

    public MemorySegment pmoe_z_loss_forward$address() {
        return pmoe_z_loss_forward$downcall.address();
    }

    /** {@code int pmoe_z_loss_forward(int32_t tokens, int32_t experts, const float *logits, float coeff, float *loss, void *stream)} */
    public int pmoe_z_loss_forward(int tokens, int experts, MemorySegment logits, float coeff,
            MemorySegment loss, MemorySegment stream) {
        try {
            return (int) pmoe_z_loss_forward$handle().invokeExact(tokens, experts, logits, coeff, loss, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_z_loss_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_INT, C_INT, C_POINTER, C_FLOAT, C_FLOAT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_z_loss_backward$downcall = new Downcall("pmoe_z_loss_backward", pmoe_z_loss_backward.DESC);

    public static FunctionDescriptor pmoe_z_loss_backward$descriptor() {
        return pmoe_z_loss_backward.DESC;
    }

    public MethodHandle pmoe_z_loss_backward$handle() {
        return pmoe_z_loss_backward$downcall.handle();
    }

    public MemorySegment pmoe_z_loss_backward$address() {
        return pmoe_z_loss_backward$downcall.address();
    }

    /** {@code int pmoe_z_loss_backward(int32_t tokens, int32_t experts, const float *logits, float coeff, float grad_loss, float *grad_logits, void *stream)} */
    public int pmoe_z_loss_backward(int tokens, int experts, MemorySegment logits, float coeff,
            float grad_loss, MemorySegment grad_logits, MemorySegment stream) {
        try {
            return (int) pmoe_z_loss_backward$handle().invokeExact(tokens, experts, logits, coeff, grad_loss, grad_logits, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_dispatch_plan {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER,
                C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_dispatch_plan$downcall = new Downcall("pmoe_dispatch_plan", pmoe_dispatch_plan.DESC);

    public static FunctionDescriptor pmoe_dispatch_plan$descriptor() {
        return pmoe_dispatch_plan.DESC;
    }

    public MethodHandle pmoe_dispatch_plan$handle() {
        return pmoe_dispatch_plan$downcall.handle();
    }

    public MemorySegment pmoe_dispatch_plan$address() {
        return pmoe_dispatch_plan$downcall.address();
    }

    /** {@code int pmoe_dispatch_plan(const pmoe_dispatch_config *cfg, const int32_t *topk_ids, const float *topk_weights, const int32_t *remap, int32_t *expert_counts, int32_t *expert_offsets, int32_t *slot_position, int32_t *sorted_slot, void *stream)} */
    public int pmoe_dispatch_plan(MemorySegment cfg, MemorySegment topk_ids, MemorySegment topk_weights,
            MemorySegment remap, MemorySegment expert_counts, MemorySegment expert_offsets,
            MemorySegment slot_position, MemorySegment sorted_slot, MemorySegment stream) {
        try {
            return (int) pmoe_dispatch_plan$handle().invokeExact(cfg, topk_ids, topk_weights, remap, expert_counts, expert_offsets, slot_position, sorted_slot, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_permute {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_permute$downcall = new Downcall("pmoe_permute", pmoe_permute.DESC);

    public static FunctionDescriptor pmoe_permute$descriptor() {
        return pmoe_permute.DESC;
    }

    public MethodHandle pmoe_permute$handle() {
        return pmoe_permute$downcall.handle();
    }

    public MemorySegment pmoe_permute$address() {
        return pmoe_permute$downcall.address();
    }

    /** {@code int pmoe_permute(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden, const void *x, const int32_t *sorted_slot, void *out, void *stream)} */
    public int pmoe_permute(int dtype, int tokens, int top_k, int rows, int hidden, MemorySegment x,
            MemorySegment sorted_slot, MemorySegment out, MemorySegment stream) {
        try {
            return (int) pmoe_permute$handle().invokeExact(dtype, tokens, top_k, rows, hidden, x, sorted_slot, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_permute_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_permute_backward$downcall = new Downcall("pmoe_permute_backward", pmoe_permute_backward.DESC);

    public static FunctionDescriptor pmoe_permute_backward$descriptor() {
        return pmoe_permute_backward.DESC;
    }

    public MethodHandle pmoe_permute_backward$handle() {
        return pmoe_permute_backward$downcall.handle();
    }

    public MemorySegment pmoe_permute_backward$address() {
        return pmoe_permute_backward$downcall.address();
    }

    /** {@code int pmoe_permute_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden, const void *grad_out, const int32_t *slot_position, void *grad_x, void *stream)} */
    public int pmoe_permute_backward(int dtype, int tokens, int top_k, int rows, int hidden,
            MemorySegment grad_out, MemorySegment slot_position, MemorySegment grad_x, MemorySegment stream) {
        try {
            return (int) pmoe_permute_backward$handle().invokeExact(dtype, tokens, top_k, rows, hidden, grad_out, slot_position, grad_x, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_combine {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER,
                C_POINTER);
    }

    private final Downcall pmoe_combine$downcall = new Downcall("pmoe_combine", pmoe_combine.DESC);

    public static FunctionDescriptor pmoe_combine$descriptor() {
        return pmoe_combine.DESC;
    }

    public MethodHandle pmoe_combine$handle() {
        return pmoe_combine$downcall.handle();
    }

    public MemorySegment pmoe_combine$address() {
        return pmoe_combine$downcall.address();
    }

    /** {@code int pmoe_combine(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden, const void *expert_out, const float *topk_weights, const int32_t *slot_position, void *y, void *stream)} */
    public int pmoe_combine(int dtype, int tokens, int top_k, int rows, int hidden, MemorySegment expert_out,
            MemorySegment topk_weights, MemorySegment slot_position, MemorySegment y, MemorySegment stream) {
        try {
            return (int) pmoe_combine$handle().invokeExact(dtype, tokens, top_k, rows, hidden, expert_out, topk_weights, slot_position, y, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_combine_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER,
                C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_combine_backward$downcall = new Downcall("pmoe_combine_backward", pmoe_combine_backward.DESC);

    public static FunctionDescriptor pmoe_combine_backward$descriptor() {
        return pmoe_combine_backward.DESC;
    }

    public MethodHandle pmoe_combine_backward$handle() {
        return pmoe_combine_backward$downcall.handle();
    }

    public MemorySegment pmoe_combine_backward$address() {
        return pmoe_combine_backward$downcall.address();
    }

    /** {@code int pmoe_combine_backward(int32_t dtype, int32_t tokens, int32_t top_k, int32_t rows, int32_t hidden, const void *grad_y, const void *expert_out, const float *topk_weights, const int32_t *slot_position, void *grad_expert_out, float *grad_weights, void *stream)} */
    public int pmoe_combine_backward(int dtype, int tokens, int top_k, int rows, int hidden,
            MemorySegment grad_y, MemorySegment expert_out, MemorySegment topk_weights,
            MemorySegment slot_position, MemorySegment grad_expert_out, MemorySegment grad_weights,
            MemorySegment stream) {
        try {
            return (int) pmoe_combine_backward$handle().invokeExact(dtype, tokens, top_k, rows, hidden, grad_y, expert_out, topk_weights, slot_position, grad_expert_out, grad_weights, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_activation_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_activation_forward$downcall = new Downcall("pmoe_activation_forward", pmoe_activation_forward.DESC);

    public static FunctionDescriptor pmoe_activation_forward$descriptor() {
        return pmoe_activation_forward.DESC;
    }

    public MethodHandle pmoe_activation_forward$handle() {
        return pmoe_activation_forward$downcall.handle();
    }

    public MemorySegment pmoe_activation_forward$address() {
        return pmoe_activation_forward$downcall.address();
    }

    /** {@code int pmoe_activation_forward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in, void *out, void *stream)} */
    public int pmoe_activation_forward(int dtype, int act, int rows, int cols, MemorySegment in, MemorySegment out,
            MemorySegment stream) {
        try {
            return (int) pmoe_activation_forward$handle().invokeExact(dtype, act, rows, cols, in, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_activation_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_activation_backward$downcall = new Downcall("pmoe_activation_backward", pmoe_activation_backward.DESC);

    public static FunctionDescriptor pmoe_activation_backward$descriptor() {
        return pmoe_activation_backward.DESC;
    }

    public MethodHandle pmoe_activation_backward$handle() {
        return pmoe_activation_backward$downcall.handle();
    }

    public MemorySegment pmoe_activation_backward$address() {
        return pmoe_activation_backward$downcall.address();
    }

    /** {@code int pmoe_activation_backward(int32_t dtype, int32_t act, int32_t rows, int32_t cols, const void *in, const void *grad_out, void *grad_in, void *stream)} */
    public int pmoe_activation_backward(int dtype, int act, int rows, int cols, MemorySegment in,
            MemorySegment grad_out, MemorySegment grad_in, MemorySegment stream) {
        try {
            return (int) pmoe_activation_backward$handle().invokeExact(dtype, act, rows, cols, in, grad_out, grad_in, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_convert {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_LONG, C_INT, C_POINTER, C_INT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_convert$downcall = new Downcall("pmoe_convert", pmoe_convert.DESC);

    public static FunctionDescriptor pmoe_convert$descriptor() {
        return pmoe_convert.DESC;
    }

    public MethodHandle pmoe_convert$handle() {
        return pmoe_convert$downcall.handle();
    }

    public MemorySegment pmoe_convert$address() {
        return pmoe_convert$downcall.address();
    }

    /** {@code int pmoe_convert(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst, void *stream)} */
    public int pmoe_convert(long n, int src_dtype, MemorySegment src, int dst_dtype, MemorySegment dst,
            MemorySegment stream) {
        try {
            return (int) pmoe_convert$handle().invokeExact(n, src_dtype, src, dst_dtype, dst, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_embedding_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_embedding_forward$downcall = new Downcall("pmoe_embedding_forward", pmoe_embedding_forward.DESC);

    public static FunctionDescriptor pmoe_embedding_forward$descriptor() {
        return pmoe_embedding_forward.DESC;
    }

    public MethodHandle pmoe_embedding_forward$handle() {
        return pmoe_embedding_forward$downcall.handle();
    }

    public MemorySegment pmoe_embedding_forward$address() {
        return pmoe_embedding_forward$downcall.address();
    }

    /** {@code int pmoe_embedding_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab, int32_t max_seq, const int32_t *ids, const void *wte, const void *wpe, void *out, void *stream)} */
    public int pmoe_embedding_forward(int dtype, int batch, int seq, int channels, int vocab, int max_seq,
            MemorySegment ids, MemorySegment wte, MemorySegment wpe, MemorySegment out, MemorySegment stream) {
        try {
            return (int) pmoe_embedding_forward$handle().invokeExact(dtype, batch, seq, channels, vocab, max_seq, ids, wte, wpe, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_embedding_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_embedding_backward$downcall = new Downcall("pmoe_embedding_backward", pmoe_embedding_backward.DESC);

    public static FunctionDescriptor pmoe_embedding_backward$descriptor() {
        return pmoe_embedding_backward.DESC;
    }

    public MethodHandle pmoe_embedding_backward$handle() {
        return pmoe_embedding_backward$downcall.handle();
    }

    public MemorySegment pmoe_embedding_backward$address() {
        return pmoe_embedding_backward$downcall.address();
    }

    /** {@code int pmoe_embedding_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t vocab, int32_t max_seq, const int32_t *ids, const void *dout, float *dwte, float *dwpe, void *stream)} */
    public int pmoe_embedding_backward(int dtype, int batch, int seq, int channels, int vocab, int max_seq,
            MemorySegment ids, MemorySegment dout, MemorySegment dwte, MemorySegment dwpe, MemorySegment stream) {
        try {
            return (int) pmoe_embedding_backward$handle().invokeExact(dtype, batch, seq, channels, vocab, max_seq, ids, dout, dwte, dwpe, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_layernorm_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_FLOAT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_layernorm_forward$downcall = new Downcall("pmoe_layernorm_forward", pmoe_layernorm_forward.DESC);

    public static FunctionDescriptor pmoe_layernorm_forward$descriptor() {
        return pmoe_layernorm_forward.DESC;
    }

    public MethodHandle pmoe_layernorm_forward$handle() {
        return pmoe_layernorm_forward$downcall.handle();
    }

    public MemorySegment pmoe_layernorm_forward$address() {
        return pmoe_layernorm_forward$downcall.address();
    }

    /** {@code int pmoe_layernorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x, const void *weight, const void *bias, void *out, float *mean, float *rstd, void *stream)} */
    public int pmoe_layernorm_forward(int dtype, int rows, int cols, float eps, MemorySegment x, MemorySegment weight,
            MemorySegment bias, MemorySegment out, MemorySegment mean, MemorySegment rstd, MemorySegment stream) {
        try {
            return (int) pmoe_layernorm_forward$handle().invokeExact(dtype, rows, cols, eps, x, weight, bias, out, mean, rstd, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_layernorm_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_layernorm_backward$downcall = new Downcall("pmoe_layernorm_backward", pmoe_layernorm_backward.DESC);

    public static FunctionDescriptor pmoe_layernorm_backward$descriptor() {
        return pmoe_layernorm_backward.DESC;
    }

    public MethodHandle pmoe_layernorm_backward$handle() {
        return pmoe_layernorm_backward$downcall.handle();
    }

    public MemorySegment pmoe_layernorm_backward$address() {
        return pmoe_layernorm_backward$downcall.address();
    }

    /** {@code int pmoe_layernorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight, const float *mean, const float *rstd, const void *dout, void *dx, float *dweight, float *dbias, void *stream)} */
    public int pmoe_layernorm_backward(int dtype, int rows, int cols, MemorySegment x, MemorySegment weight,
            MemorySegment mean, MemorySegment rstd, MemorySegment dout, MemorySegment dx, MemorySegment dweight,
            MemorySegment dbias, MemorySegment stream) {
        try {
            return (int) pmoe_layernorm_backward$handle().invokeExact(dtype, rows, cols, x, weight, mean, rstd, dout, dx, dweight, dbias, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_rmsnorm_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_FLOAT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_rmsnorm_forward$downcall = new Downcall("pmoe_rmsnorm_forward", pmoe_rmsnorm_forward.DESC);

    public static FunctionDescriptor pmoe_rmsnorm_forward$descriptor() {
        return pmoe_rmsnorm_forward.DESC;
    }

    public MethodHandle pmoe_rmsnorm_forward$handle() {
        return pmoe_rmsnorm_forward$downcall.handle();
    }

    public MemorySegment pmoe_rmsnorm_forward$address() {
        return pmoe_rmsnorm_forward$downcall.address();
    }

    /** {@code int pmoe_rmsnorm_forward(int32_t dtype, int32_t rows, int32_t cols, float eps, const void *x, const void *weight, void *out, float *rstd, void *stream)} */
    public int pmoe_rmsnorm_forward(int dtype, int rows, int cols, float eps, MemorySegment x, MemorySegment weight,
            MemorySegment out, MemorySegment rstd, MemorySegment stream) {
        try {
            return (int) pmoe_rmsnorm_forward$handle().invokeExact(dtype, rows, cols, eps, x, weight, out, rstd, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_rmsnorm_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_rmsnorm_backward$downcall = new Downcall("pmoe_rmsnorm_backward", pmoe_rmsnorm_backward.DESC);

    public static FunctionDescriptor pmoe_rmsnorm_backward$descriptor() {
        return pmoe_rmsnorm_backward.DESC;
    }

    public MethodHandle pmoe_rmsnorm_backward$handle() {
        return pmoe_rmsnorm_backward$downcall.handle();
    }

    public MemorySegment pmoe_rmsnorm_backward$address() {
        return pmoe_rmsnorm_backward$downcall.address();
    }

    /** {@code int pmoe_rmsnorm_backward(int32_t dtype, int32_t rows, int32_t cols, const void *x, const void *weight, const float *rstd, const void *dout, void *dx, float *dweight, void *stream)} */
    public int pmoe_rmsnorm_backward(int dtype, int rows, int cols, MemorySegment x, MemorySegment weight,
            MemorySegment rstd, MemorySegment dout, MemorySegment dx, MemorySegment dweight, MemorySegment stream) {
        try {
            return (int) pmoe_rmsnorm_backward$handle().invokeExact(dtype, rows, cols, x, weight, rstd, dout, dx, dweight, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_bias_add {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_bias_add$downcall = new Downcall("pmoe_bias_add", pmoe_bias_add.DESC);

    public static FunctionDescriptor pmoe_bias_add$descriptor() {
        return pmoe_bias_add.DESC;
    }

    public MethodHandle pmoe_bias_add$handle() {
        return pmoe_bias_add$downcall.handle();
    }

    public MemorySegment pmoe_bias_add$address() {
        return pmoe_bias_add$downcall.address();
    }

    /** {@code int pmoe_bias_add(int32_t dtype, int32_t rows, int32_t cols, const void *bias, void *x, void *stream)} */
    public int pmoe_bias_add(int dtype, int rows, int cols, MemorySegment bias, MemorySegment x, MemorySegment stream) {
        try {
            return (int) pmoe_bias_add$handle().invokeExact(dtype, rows, cols, bias, x, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_bias_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_bias_backward$downcall = new Downcall("pmoe_bias_backward", pmoe_bias_backward.DESC);

    public static FunctionDescriptor pmoe_bias_backward$descriptor() {
        return pmoe_bias_backward.DESC;
    }

    public MethodHandle pmoe_bias_backward$handle() {
        return pmoe_bias_backward$downcall.handle();
    }

    public MemorySegment pmoe_bias_backward$address() {
        return pmoe_bias_backward$downcall.address();
    }

    /** {@code int pmoe_bias_backward(int32_t dtype, int32_t rows, int32_t cols, const void *dout, float *dbias, void *stream)} */
    public int pmoe_bias_backward(int dtype, int rows, int cols, MemorySegment dout, MemorySegment dbias,
            MemorySegment stream) {
        try {
            return (int) pmoe_bias_backward$handle().invokeExact(dtype, rows, cols, dout, dbias, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_add {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_LONG, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_add$downcall = new Downcall("pmoe_add", pmoe_add.DESC);

    public static FunctionDescriptor pmoe_add$descriptor() {
        return pmoe_add.DESC;
    }

    public MethodHandle pmoe_add$handle() {
        return pmoe_add$downcall.handle();
    }

    public MemorySegment pmoe_add$address() {
        return pmoe_add$downcall.address();
    }

    /** {@code int pmoe_add(int32_t dtype, int64_t n, const void *a, const void *b, void *out, void *stream)} */
    public int pmoe_add(int dtype, long n, MemorySegment a, MemorySegment b, MemorySegment out, MemorySegment stream) {
        try {
            return (int) pmoe_add$handle().invokeExact(dtype, n, a, b, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_accumulate {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_LONG, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_accumulate$downcall = new Downcall("pmoe_accumulate", pmoe_accumulate.DESC);

    public static FunctionDescriptor pmoe_accumulate$descriptor() {
        return pmoe_accumulate.DESC;
    }

    public MethodHandle pmoe_accumulate$handle() {
        return pmoe_accumulate$downcall.handle();
    }

    public MemorySegment pmoe_accumulate$address() {
        return pmoe_accumulate$downcall.address();
    }

    /** {@code int pmoe_accumulate(int32_t dtype, int64_t n, const void *x, void *y, void *stream)} */
    public int pmoe_accumulate(int dtype, long n, MemorySegment x, MemorySegment y, MemorySegment stream) {
        try {
            return (int) pmoe_accumulate$handle().invokeExact(dtype, n, x, y, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_scale {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_LONG, C_FLOAT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_scale$downcall = new Downcall("pmoe_scale", pmoe_scale.DESC);

    public static FunctionDescriptor pmoe_scale$descriptor() {
        return pmoe_scale.DESC;
    }

    public MethodHandle pmoe_scale$handle() {
        return pmoe_scale$downcall.handle();
    }

    public MemorySegment pmoe_scale$address() {
        return pmoe_scale$downcall.address();
    }

    /** {@code int pmoe_scale(int32_t dtype, int64_t n, float alpha, void *x, void *stream)} */
    public int pmoe_scale(int dtype, long n, float alpha, MemorySegment x, MemorySegment stream) {
        try {
            return (int) pmoe_scale$handle().invokeExact(dtype, n, alpha, x, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_attention_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_attention_forward$downcall = new Downcall("pmoe_attention_forward", pmoe_attention_forward.DESC);

    public static FunctionDescriptor pmoe_attention_forward$descriptor() {
        return pmoe_attention_forward.DESC;
    }

    public MethodHandle pmoe_attention_forward$handle() {
        return pmoe_attention_forward$downcall.handle();
    }

    public MemorySegment pmoe_attention_forward$address() {
        return pmoe_attention_forward$downcall.address();
    }

    /** {@code int pmoe_attention_forward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads, const void *qkv, float *att, void *out, void *stream)} */
    public int pmoe_attention_forward(int dtype, int batch, int seq, int channels, int heads, MemorySegment qkv,
            MemorySegment att, MemorySegment out, MemorySegment stream) {
        try {
            return (int) pmoe_attention_forward$handle().invokeExact(dtype, batch, seq, channels, heads, qkv, att, out, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_attention_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_attention_backward$downcall = new Downcall("pmoe_attention_backward", pmoe_attention_backward.DESC);

    public static FunctionDescriptor pmoe_attention_backward$descriptor() {
        return pmoe_attention_backward.DESC;
    }

    public MethodHandle pmoe_attention_backward$handle() {
        return pmoe_attention_backward$downcall.handle();
    }

    public MemorySegment pmoe_attention_backward$address() {
        return pmoe_attention_backward$downcall.address();
    }

    /** {@code int pmoe_attention_backward(int32_t dtype, int32_t batch, int32_t seq, int32_t channels, int32_t heads, const void *qkv, const float *att, const void *dout, void *dqkv, void *stream)} */
    public int pmoe_attention_backward(int dtype, int batch, int seq, int channels, int heads, MemorySegment qkv,
            MemorySegment att, MemorySegment dout, MemorySegment dqkv, MemorySegment stream) {
        try {
            return (int) pmoe_attention_backward$handle().invokeExact(dtype, batch, seq, channels, heads, qkv, att, dout, dqkv, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_cross_entropy_forward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_cross_entropy_forward$downcall = new Downcall("pmoe_cross_entropy_forward", pmoe_cross_entropy_forward.DESC);

    public static FunctionDescriptor pmoe_cross_entropy_forward$descriptor() {
        return pmoe_cross_entropy_forward.DESC;
    }

    public MethodHandle pmoe_cross_entropy_forward$handle() {
        return pmoe_cross_entropy_forward$downcall.handle();
    }

    public MemorySegment pmoe_cross_entropy_forward$address() {
        return pmoe_cross_entropy_forward$downcall.address();
    }

    /** {@code int pmoe_cross_entropy_forward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits, const int32_t *targets, float *losses, float *mean_loss, int32_t *kept_rows, void *stream)} */
    public int pmoe_cross_entropy_forward(int dtype, int rows, int vocab, MemorySegment logits, MemorySegment targets,
            MemorySegment losses, MemorySegment mean_loss, MemorySegment kept_rows, MemorySegment stream) {
        try {
            return (int) pmoe_cross_entropy_forward$handle().invokeExact(dtype, rows, vocab, logits, targets, losses, mean_loss, kept_rows, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_cross_entropy_backward {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_FLOAT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_cross_entropy_backward$downcall = new Downcall("pmoe_cross_entropy_backward", pmoe_cross_entropy_backward.DESC);

    public static FunctionDescriptor pmoe_cross_entropy_backward$descriptor() {
        return pmoe_cross_entropy_backward.DESC;
    }

    public MethodHandle pmoe_cross_entropy_backward$handle() {
        return pmoe_cross_entropy_backward$downcall.handle();
    }

    public MemorySegment pmoe_cross_entropy_backward$address() {
        return pmoe_cross_entropy_backward$downcall.address();
    }

    /** {@code int pmoe_cross_entropy_backward(int32_t dtype, int32_t rows, int32_t vocab, const void *logits, const int32_t *targets, float grad_scale, void *dlogits, void *stream)} */
    public int pmoe_cross_entropy_backward(int dtype, int rows, int vocab, MemorySegment logits, MemorySegment targets,
            float grad_scale, MemorySegment dlogits, MemorySegment stream) {
        try {
            return (int) pmoe_cross_entropy_backward$handle().invokeExact(dtype, rows, vocab, logits, targets, grad_scale, dlogits, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_adamw_step {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(
                C_INT, C_LONG, C_POINTER, C_POINTER, C_FLOAT, C_POINTER, C_POINTER, C_FLOAT, C_FLOAT,
                C_FLOAT, C_FLOAT, C_FLOAT, C_INT, C_INT, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_adamw_step$downcall = new Downcall("pmoe_adamw_step", pmoe_adamw_step.DESC);

    public static FunctionDescriptor pmoe_adamw_step$descriptor() {
        return pmoe_adamw_step.DESC;
    }

    public MethodHandle pmoe_adamw_step$handle() {
        return pmoe_adamw_step$downcall.handle();
    }

    public MemorySegment pmoe_adamw_step$address() {
        return pmoe_adamw_step$downcall.address();
    }

    /** {@code int pmoe_adamw_step(int64_t n, float *params, const float *grads, float grad_scale, float *m, float *v, float lr, float beta1, float beta2, float eps, float weight_decay, int32_t step, int32_t working_dtype, void *working, void *stream)} */
    public int pmoe_adamw_step(long n, MemorySegment params, MemorySegment grads, float grad_scale,
            MemorySegment m, MemorySegment v, float lr, float beta1, float beta2, float eps, float weight_decay,
            int step, int working_dtype, MemorySegment working, MemorySegment stream) {
        try {
            return (int) pmoe_adamw_step$handle().invokeExact(n, params, grads, grad_scale, m, v, lr, beta1, beta2, eps, weight_decay, step, working_dtype, working, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    private static final class pmoe_sum_squares {
        static final FunctionDescriptor DESC = FunctionDescriptor.of(C_INT, C_LONG, C_POINTER, C_POINTER, C_POINTER);
    }

    private final Downcall pmoe_sum_squares$downcall = new Downcall("pmoe_sum_squares", pmoe_sum_squares.DESC);

    public static FunctionDescriptor pmoe_sum_squares$descriptor() {
        return pmoe_sum_squares.DESC;
    }

    public MethodHandle pmoe_sum_squares$handle() {
        return pmoe_sum_squares$downcall.handle();
    }

    public MemorySegment pmoe_sum_squares$address() {
        return pmoe_sum_squares$downcall.address();
    }

    /** {@code int pmoe_sum_squares(int64_t n, const float *x, double *sum_squares, void *stream)} */
    public int pmoe_sum_squares(long n, MemorySegment x, MemorySegment sum_squares, MemorySegment stream) {
        try {
            return (int) pmoe_sum_squares$handle().invokeExact(n, x, sum_squares, stream);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable e) {
            throw new AssertionError("should not reach here", e);
        }
    }

    // ---- pmoe_noop with Linker.Option.critical, for measuring the cheapest possible downcall ----

    private final Downcall pmoe_noop$criticalDowncall =
            new Downcall("pmoe_noop", pmoe_noop.DESC, Linker.Option.critical(false));

    /** pmoe_noop linked with {@code Linker.Option.critical(false)}: no thread-state transition. */
    public MethodHandle pmoe_noop$criticalHandle() {
        return pmoe_noop$criticalDowncall.handle();
    }
}
