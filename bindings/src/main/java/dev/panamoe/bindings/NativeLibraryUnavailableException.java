package dev.panamoe.bindings;

/**
 * A native library could not be found or loaded. The message says what was tried (property,
 * folder, classpath resource, soname) and why each attempt failed, so a backend can report
 * itself as unavailable with a reason instead of crashing.
 */
public final class NativeLibraryUnavailableException extends RuntimeException {
    public NativeLibraryUnavailableException(String message) {
        super(message);
    }

    public NativeLibraryUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
