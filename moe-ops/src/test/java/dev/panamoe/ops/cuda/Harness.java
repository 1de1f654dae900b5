package dev.panamoe.ops.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamoe.bindings.NativeLibraries;
import dev.panamoe.bindings.NativeStatus;
import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.function.IntToDoubleFunction;

/**
 * Runs the CUDA kernels through the host-execution harness (libpanamoe_cuda_host.so: the same
 * .cu sources compiled by the host compiler, "device memory" being host memory) next to the CPU
 * library on the same inputs, and compares what they write.
 */
final class Harness {
    private Harness() {}

    /** The harness build to test: system property panamoe.harness.library (e.g. the ThreadSanitizer build). */
    static final String HOST_LIBRARY = System.getProperty("panamoe.harness.library", "libpanamoe_cuda_host.so");
    /**
     * Whether the harness is the ThreadSanitizer build (scripts/hostexec-tsan), where every GPU
     * thread is an OS thread: tests run there pick a few small ragged shapes.
     */
    static final boolean THREAD_SANITIZER = HOST_LIBRARY.contains("tsan");
    static final panamoe_h CPU = panamoe_h.cpu();
    static final panamoe_h HOST = panamoe_h.open(NativeLibraries.panamoe(HOST_LIBRARY));
    static final MemorySegment NO_STREAM = MemorySegment.NULL;
    static final int F32 = panamoe_h.PMOE_DTYPE_F32(), BF16 = panamoe_h.PMOE_DTYPE_BF16();
    static final double F32_EPS = 0x1p-24, BF16_EPS = 0x1p-8;

    /** Entry points that ran through the harness and matched the CPU library. */
    static final Set<String> RAN = new ConcurrentSkipListSet<>();
    /** Those of them that ran on bf16 data (a dtype argument of BF16, or a _bf16 entry point). */
    static final Set<String> RAN_BF16 = new ConcurrentSkipListSet<>();

    /** One call of an entry point on `lib`, writing into `outs`; returns its status. */
    @FunctionalInterface
    interface Call {
        int run(panamoe_h lib, MemorySegment[] outs);
    }

    /** An output buffer: its size and the byte it is poisoned with before each call. */
    record Out(long bytes, byte poison) {
        static Out floats(long n) {
            return new Out(4 * n, (byte) 0xff); // NaN
        }

        static Out ints(long n) {
            return new Out(4 * n, (byte) 0xa5); // -1515870811
        }

        static Out of(int dtype, long n) {
            return new Out((dtype == BF16 ? 2 : 4) * n, (byte) 0xff);
        }
    }

    /** Outputs of one call on the CPU library and on the harness. */
    record Pair(MemorySegment[] cpu, MemorySegment[] host) {}

    /**
     * Runs `call` on both libraries, each with its own poisoned outputs, requires PMOE_OK from
     * both, and records `kernel` as run through the harness.
     */
    static Pair both(Arena arena, String kernel, List<Out> outs, Call call) {
        MemorySegment[] cpu = allocate(arena, outs), host = allocate(arena, outs);
        assertOk(CPU, call.run(CPU, cpu), kernel + " (cpu)");
        assertOk(HOST, call.run(HOST, host), kernel + " (harness)");
        RAN.add(kernel);
        if (kernel.endsWith("_bf16")) RAN_BF16.add(kernel);
        return new Pair(cpu, host);
    }

    /** {@link #both} for a call whose storage is dtype (recorded as a bf16 run when it is BF16). */
    static Pair both(Arena arena, int dtype, String kernel, List<Out> outs, Call call) {
        Pair p = both(arena, kernel, outs, call);
        if (dtype == BF16) RAN_BF16.add(kernel);
        return p;
    }

    /** Both libraries reject the call with the same status and the same message. */
    static String bothReject(Arena arena, String kernel, List<Out> outs, Call call) {
        int cpuStatus = call.run(CPU, allocate(arena, outs));
        String cpuMessage = lastError(CPU);
        int hostStatus = call.run(HOST, allocate(arena, outs));
        String hostMessage = lastError(HOST);
        if (cpuStatus == panamoe_h.PMOE_OK()) fail(kernel + ": the CPU library accepted the bad input");
        assertEquals(NativeStatus.name(cpuStatus) + ": " + cpuMessage, NativeStatus.name(hostStatus) + ": " + hostMessage,
                kernel + ": the harness must reject as the CPU library does");
        return hostMessage;
    }

    static MemorySegment[] allocate(Arena arena, List<Out> outs) {
        MemorySegment[] s = new MemorySegment[outs.size()];
        for (int i = 0; i < s.length; i++) {
            Out o = outs.get(i);
            s[i] = arena.allocate(Math.max(16, o.bytes()), 16).asSlice(0, o.bytes()).fill(o.poison());
        }
        return s;
    }

    static String lastError(panamoe_h lib) {
        return lib.pmoe_last_error().getString(0);
    }

    static void assertOk(panamoe_h lib, int status, String call) {
        assertEquals(panamoe_h.PMOE_OK(), status,
                () -> call + " failed: " + lastError(lib) + " (status " + NativeStatus.name(status) + ")");
    }

    // ---- inputs (16-byte aligned, as cudaMalloc's, so the vectorised paths run) ----

    static MemorySegment floats(Arena arena, float... v) {
        MemorySegment s = arena.allocate(Math.max(16, 4L * v.length), 16).asSlice(0, 4L * v.length);
        MemorySegment.copy(v, 0, s, JAVA_FLOAT, 0, v.length);
        return s;
    }

    static MemorySegment ints(Arena arena, int... v) {
        MemorySegment s = arena.allocate(Math.max(16, 4L * v.length), 16).asSlice(0, 4L * v.length);
        MemorySegment.copy(v, 0, s, JAVA_INT, 0, v.length);
        return s;
    }

    static MemorySegment tensor(Arena arena, int dtype, float... v) {
        if (dtype == F32) return floats(arena, v);
        MemorySegment s = arena.allocate(Math.max(16, 2L * v.length), 16).asSlice(0, 2L * v.length);
        for (int i = 0; i < v.length; i++) s.setAtIndex(JAVA_SHORT, i, bf16Bits(v[i]));
        return s;
    }

    static MemorySegment pointers(Arena arena, MemorySegment... targets) {
        MemorySegment s = arena.allocate(ADDRESS, Math.max(1, targets.length));
        for (int i = 0; i < targets.length; i++) s.setAtIndex(ADDRESS, i, targets[i]);
        return s;
    }

    static float[] uniform(Random rnd, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        return v;
    }

    static float[] gaussian(Random rnd, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (std * rnd.nextGaussian());
        return v;
    }

    static short bf16Bits(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40);
        bits += 0x7fff + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    /** The values rounded to bf16 (nearest even), kept as f32: inputs that both dtypes hold exactly. */
    static float[] bf16Values(float[] v) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) r[i] = Float.intBitsToFloat((bf16Bits(v[i]) & 0xffff) << 16);
        return r;
    }

    static float[] read(MemorySegment s, int dtype) {
        if (dtype == F32) return s.toArray(JAVA_FLOAT);
        short[] bits = s.toArray(JAVA_SHORT);
        float[] v = new float[bits.length];
        for (int i = 0; i < v.length; i++) v[i] = Float.intBitsToFloat((bits[i] & 0xffff) << 16);
        return v;
    }

    // ---- comparisons ----

    static void assertSameInts(String what, MemorySegment expected, MemorySegment actual) {
        assertArrayEquals(expected.toArray(JAVA_INT), actual.toArray(JAVA_INT), what + ": harness differs from cpu");
    }

    /** |host - cpu| <= tolerance(i) element by element; NaN (an unwritten output) never passes. */
    static void assertClose(String what, float[] cpu, float[] host, IntToDoubleFunction tolerance) {
        assertEquals(cpu.length, host.length, what + ": length");
        for (int i = 0; i < cpu.length; i++) {
            double err = Math.abs((double) host[i] - cpu[i]);
            if (!(err <= tolerance.applyAsDouble(i)))
                fail(String.format("%s: element %d: cpu %.9g, harness %.9g (|diff| %.3g > %.3g)", what, i, cpu[i],
                        host[i], err, tolerance.applyAsDouble(i)));
        }
    }

    static void assertClose(String what, MemorySegment cpu, MemorySegment host, int dtype, double relative,
            double absolute) {
        float[] c = read(cpu, dtype), h = read(host, dtype);
        assertClose(what, c, h, i -> relative * Math.abs(c[i]) + absolute);
    }

    /** One unit in the last place of v stored as dtype (bf16 keeps 8 of f32's 24 significant bits). */
    static double ulp(int dtype, float v) {
        return dtype == BF16 ? 0x1p16 * Math.ulp(v) : Math.ulp(v);
    }

    /**
     * Outputs that both libraries compute in f32, agreeing within relative * |cpu| + absolute,
     * then round once to dtype: two f32 values that close may round to neighbouring values, so
     * one unit in the last place of dtype (of the larger of the two) is allowed on top. For bf16
     * that is one bf16 ulp beyond the f32 tolerance.
     */
    static void assertCloseRounded(String what, MemorySegment cpu, MemorySegment host, int dtype, double relative,
            double absolute) {
        float[] c = read(cpu, dtype), h = read(host, dtype);
        assertClose(what, c, h,
                i -> ulp(dtype, Math.max(Math.abs(c[i]), Math.abs(h[i]))) + relative * Math.abs(c[i]) + absolute);
    }

    // ---- what the harness covers ----

    /** The functions of panamoe.h, from the bindings' typed wrappers. */
    static Set<String> headerFunctions() {
        Set<String> names = new TreeSet<>();
        for (Method m : panamoe_h.class.getDeclaredMethods()) {
            String n = m.getName();
            if (n.startsWith("pmoe_") && !n.contains("$") && Modifier.isPublic(m.getModifiers())
                    && !Modifier.isStatic(m.getModifiers())) names.add(n);
        }
        return names;
    }

    static Set<String> exported(panamoe_h lib) {
        Set<String> names = new TreeSet<>();
        for (String n : headerFunctions())
            if (lib.library().lookup().find(n).isPresent()) names.add(n);
        return names;
    }

    static String list(Set<String> names) {
        return names.isEmpty() ? "none" : String.join(", ", names);
    }

    /**
     * Launches so far, through the harness, of kernels launched as {@code kernel} (the name a
     * .cu file gives launch(); hostexec's pmoe_hostexec_launches): which kernel ran an entry point.
     */
    static long launches(String kernel) {
        try (Arena arena = Arena.ofConfined()) {
            return (long) Launches.HANDLE.invokeExact(arena.allocateFrom(kernel));
        } catch (Throwable e) {
            throw new AssertionError("pmoe_hostexec_launches(" + kernel + ")", e);
        }
    }

    private static final class Launches {
        @SuppressWarnings("restricted")
        static final MethodHandle HANDLE = Linker.nativeLinker().downcallHandle(
                HOST.library().lookup().find("pmoe_hostexec_launches").orElseThrow(
                        () -> new AssertionError("pmoe_hostexec_launches is missing from " + HOST_LIBRARY)),
                FunctionDescriptor.of(JAVA_LONG, ADDRESS));
    }
}
