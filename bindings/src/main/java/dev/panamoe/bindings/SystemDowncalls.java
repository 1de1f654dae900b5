package dev.panamoe.bindings;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/** Shared plumbing of the static bindings of system libraries (cudart_h, nccl_h, mpi_h). */
@SuppressWarnings("restricted")
final class SystemDowncalls {
    private SystemDowncalls() {}

    static MethodHandle downcall(NativeLibraries.Loaded library, String name, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(address(library, name), descriptor);
    }

    static MemorySegment address(NativeLibraries.Loaded library, String name) {
        return library.lookup().find(name).orElseThrow(
                () -> new UnsupportedOperationException(name + " is not exported by " + library.path()));
    }

    /** jextract's wrappers rethrow what invokeExact throws: unchecked as is, anything else cannot happen. */
    static RuntimeException rethrow(Throwable e) {
        if (e instanceof RuntimeException r) return r;
        if (e instanceof Error err) throw err;
        throw new AssertionError("should not reach here", e);
    }
}
